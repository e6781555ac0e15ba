// The orchestrator widget: anywidget's entry point. Not shared/widget.ts's `widget()`: the
// view also takes anywidget's host, through which it shows an agent's trace viewer.
import "../shared/styles.css";
import "./styles.css";
import type { Render } from "@anywidget/types";
import type { WidgetTraits } from "../shared/widget";
import { OrchestratorView } from "./view";

const render: Render<WidgetTraits> = ({ model, el, host }) => {
  const view = new OrchestratorView(model, el, host ?? null);
  return () => view.destroy();
};

export default { render };
