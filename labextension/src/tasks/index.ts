// The tasks pane widget: anywidget's entry point. Not shared/widget.ts's `widget()`: the
// pane also takes anywidget's host, through which it shows a subagent's trace viewer.
import "../shared/styles.css";
import "./styles.css";
import type { Render } from "@anywidget/types";
import type { WidgetTraits } from "../shared/widget";
import { TasksView } from "./view";

const render: Render<WidgetTraits> = ({ model, el, host }) => {
  const view = new TasksView(model, el, host ?? null);
  return () => view.destroy();
};

export default { render };
