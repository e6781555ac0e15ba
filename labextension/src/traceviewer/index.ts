// The trace viewer widget: anywidget's entry point.
import "../shared/styles.css";
import "./styles.css";
import { widget } from "../shared/widget";
import { TraceView } from "./view";

export default widget(TraceView);
