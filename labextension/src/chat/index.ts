// The chat widget (an agent's pane): anywidget's entry point.
import "../shared/styles.css";
import "./styles.css";
import { widget } from "../shared/widget";
import { ChatView } from "./view";

export default widget(ChatView);
