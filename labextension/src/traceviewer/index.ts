// The trace viewer widget: anywidget's entry point.
import "./styles.css";
import type { WidgetModel } from "./protocol";
import { TraceView } from "./view";

export default {
  render({ model, el }: { model: WidgetModel; el: HTMLElement }): () => void {
    const view = new TraceView(model, el);
    return () => view.destroy();
  },
};
