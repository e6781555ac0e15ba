// The chat widget (an agent's pane): anywidget's entry point.
import "./styles.css";
import type { WidgetModel } from "./protocol";
import { ChatView } from "./view";

export default {
  render({ model, el }: { model: WidgetModel; el: HTMLElement }): () => void {
    const view = new ChatView(model, el);
    return () => view.destroy();
  },
};
