// anywidget's side of every view: the model's traits, and the entry point a view exports.
import type { AnyModel, Render } from "@anywidget/types";

/** The traits every boonb widget syncs (boonb/widgets/common.py). */
export interface WidgetTraits {
  chat_id: string;
}

/** anywidget's model of a boonb widget. */
export type WidgetModel = AnyModel<WidgetTraits>;

/** A view as its entry point builds it: from the model and the element to render into. */
export interface Destroyable {
  destroy(): void;
}

/**
 * anywidget's module for a view: `export default widget(ChatView)`. The cleanup render
 * returns is how anywidget tears a view down (cell re-run, output cleared, widget closed).
 */
export function widget(View: new (model: WidgetModel, el: HTMLElement) => Destroyable): {
  render: Render<WidgetTraits>;
} {
  return {
    render({ model, el }) {
      const view = new View(model, el);
      return () => view.destroy();
    },
  };
}
