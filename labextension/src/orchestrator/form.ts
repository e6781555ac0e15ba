// The selector and the arguments form: a searchable list of workflows, and the chosen one's
// arguments as a form or as JSON (two views of the same values), with the manager's
// problems shown inline under each argument.
import type { JsonValue } from "../frames";
import { h } from "../shared/dom";
import type { ArgError, WorkflowInfo } from "./api";
import { button, fieldRow, setText, workflowOption } from "./dom";
import {
  type ArgField,
  type FieldInput,
  type ReadProblem,
  argsFromInputs,
  argsJson,
  initialInputs,
  inputFor,
  parseArgsJson,
  problemsByField,
  searchWorkflows,
  sourceLabel,
} from "./state";

export type FormMode = "form" | "json";

export class WorkflowPicker {
  readonly el: HTMLElement;
  readonly search: HTMLInputElement;
  private readonly list: HTMLElement;
  private readonly empty: HTMLElement;
  private drawn = "";

  constructor(id: string) {
    this.el = h("div", "or-picker");
    this.search = h("input", "or-input or-search");
    this.search.type = "search";
    this.search.id = `${id}-search`;
    this.search.placeholder = "Search workflows";
    this.search.setAttribute("aria-label", "Search workflows by name, description or source");
    this.list = h("div", "or-workflows");
    this.list.setAttribute("role", "listbox");
    this.list.setAttribute("aria-label", "Workflows");
    this.empty = h("div", "or-empty", "No workflow matches.");
    this.empty.hidden = true;
    this.el.append(this.search, this.list, this.empty);
  }

  paint(workflows: readonly WorkflowInfo[], selected: string | null): void {
    const shown = searchWorkflows(workflows, this.search.value);
    const signature = `${shown.map((w) => w.name).join("\u0000")}\u0001${selected ?? ""}`;
    if (signature === this.drawn) return;
    this.drawn = signature;
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.["name"];
    this.list.replaceChildren(...shown.map((w) => workflowOption(w, w.name === selected)));
    this.empty.hidden = shown.length > 0 || workflows.length === 0;
    if (focused !== undefined) {
      this.list.querySelector<HTMLElement>(`[data-name="${CSS.escape(focused)}"]`)?.focus();
    }
  }

  /** Arrow keys move between workflows in the list. */
  move(from: HTMLElement, step: number): void {
    const items = [...this.list.querySelectorAll<HTMLElement>(".or-workflow")];
    const next = items[items.indexOf(from) + step];
    next?.focus();
  }
}

export class ArgsForm {
  readonly el: HTMLElement;
  private readonly title: HTMLElement;
  private readonly description: HTMLElement;
  private readonly formTab: HTMLButtonElement;
  private readonly jsonTab: HTMLButtonElement;
  private readonly fieldsBox: HTMLElement;
  readonly json: HTMLTextAreaElement;
  private readonly jsonError: HTMLElement;
  private readonly generalError: HTMLElement;
  readonly runButton: HTMLButtonElement;
  private readonly verdict: HTMLElement;
  private workflow: WorkflowInfo | null = null;
  private fields: ArgField[] = [];
  private inputs = new Map<string, FieldInput>();
  private errors = new Map<string, HTMLElement>();
  private rows = new Map<string, HTMLElement>();
  mode: FormMode = "form";
  /** Problems found reading the inputs (JSON that does not parse), by argument. */
  private readProblems: ReadProblem[] = [];
  private jsonProblem: string | null = null;

  constructor(private readonly id: string) {
    this.el = h("div", "or-form-box");
    this.el.hidden = true;
    const head = h("div", "or-form-head");
    this.title = h("span", "or-form-title");
    const tabs = h("div", "or-tabs");
    tabs.setAttribute("role", "group");
    tabs.setAttribute("aria-label", "Edit the arguments as");
    this.formTab = button("or-tab", "Form", "mode-form");
    this.jsonTab = button("or-tab", "JSON", "mode-json");
    tabs.append(this.formTab, this.jsonTab);
    head.append(this.title, h("span", "or-spacer"), tabs);
    this.description = h("div", "or-form-description");
    this.fieldsBox = h("div", "or-fields");
    this.json = h("textarea", "or-input or-json-editor");
    this.json.id = `${id}-json`;
    this.json.spellcheck = false;
    this.json.rows = 8;
    this.json.setAttribute("aria-label", "The arguments as a JSON object");
    this.jsonError = h("div", "or-field-error or-json-error");
    this.jsonError.setAttribute("role", "alert");
    this.jsonError.hidden = true;
    this.generalError = h("div", "or-form-error");
    this.generalError.setAttribute("role", "alert");
    this.generalError.hidden = true;
    const actions = h("div", "or-form-actions");
    this.runButton = button("or-run-button", "Run", "run");
    this.verdict = h("span", "or-verdict");
    this.verdict.setAttribute("aria-live", "polite");
    actions.append(this.runButton, this.verdict);
    this.el.append(head, this.description, this.fieldsBox, this.json, this.jsonError, this.generalError, actions);
    this.setMode("form");
  }

  get selected(): WorkflowInfo | null {
    return this.workflow;
  }

  /** Show a workflow's arguments, its defaults filled in (or ``values``, for a re-run). */
  show(workflow: WorkflowInfo, values: { [key: string]: JsonValue } | null = null): void {
    this.workflow = workflow;
    this.fields = workflow.args;
    this.inputs = initialInputs(this.fields);
    if (values !== null) {
      for (const field of this.fields) {
        if (field.name in values) this.inputs.set(field.name, inputFor(field, values[field.name]));
      }
    }
    this.el.hidden = false;
    this.el.dataset["workflow"] = workflow.name;
    setText(this.title, `${workflow.name}`);
    this.title.title = workflow.path;
    this.description.replaceChildren(
      h("span", `or-source or-source-${workflow.source}`, sourceLabel(workflow.source)),
      document.createTextNode(` ${workflow.description}`),
    );
    this.fieldsBox.replaceChildren();
    this.errors.clear();
    this.rows.clear();
    for (const field of this.fields) {
      const input = this.inputs.get(field.name) ?? { kind: "text", text: "" };
      const { row, error } = fieldRow(field, input, this.id);
      this.errors.set(field.name, error);
      this.rows.set(field.name, row);
      this.fieldsBox.append(row);
    }
    if (this.fields.length === 0) this.fieldsBox.append(h("div", "or-empty", "This workflow takes no arguments."));
    this.readProblems = [];
    this.jsonProblem = null;
    this.showProblems([]);
    this.syncJson();
  }

  setMode(mode: FormMode): void {
    if (mode === "json") this.syncJson();
    this.mode = mode;
    this.formTab.setAttribute("aria-pressed", String(mode === "form"));
    this.jsonTab.setAttribute("aria-pressed", String(mode === "json"));
    this.fieldsBox.hidden = mode !== "form";
    this.json.hidden = mode !== "json";
    this.jsonError.hidden = mode !== "json" || this.jsonProblem === null;
    this.el.dataset["mode"] = mode;
  }

  /** A form field changed: read it into the values. */
  readField(control: HTMLInputElement | HTMLTextAreaElement): void {
    const name = control.dataset["arg"];
    if (name === undefined) return;
    const input: FieldInput =
      control instanceof HTMLInputElement && control.type === "checkbox"
        ? { kind: "bool", value: control.checked }
        : { kind: "text", text: control.value };
    this.inputs.set(name, input);
  }

  /** The JSON editor changed: its object becomes the form's values, or its problem shows. */
  readJson(): void {
    const parsed = parseArgsJson(this.json.value);
    if ("error" in parsed) {
      this.jsonProblem = parsed.error;
    } else {
      this.jsonProblem = null;
      for (const field of this.fields) {
        const value = parsed.args[field.name];
        this.inputs.set(field.name, inputFor(field, value));
        const control = this.rows.get(field.name)?.querySelector<HTMLInputElement | HTMLTextAreaElement>(".or-input");
        if (control !== null && control !== undefined) writeControl(control, this.inputs.get(field.name));
      }
    }
    setText(this.jsonError, this.jsonProblem ?? "");
    this.jsonError.hidden = this.jsonProblem === null;
  }

  /**
   * The arguments to check or run, or null when they cannot be read (JSON that does not
   * parse). Unknown keys typed in the JSON editor go along, for the manager to refuse.
   */
  args(): { [key: string]: JsonValue } | null {
    if (this.mode === "json") {
      const parsed = parseArgsJson(this.json.value);
      if ("error" in parsed) return null;
      const { problems } = argsFromInputs(this.fields, this.inputs);
      this.readProblems = problems;
      return parsed.args;
    }
    const { args, problems } = argsFromInputs(this.fields, this.inputs);
    this.readProblems = problems;
    return problems.length > 0 ? null : args;
  }

  /** The manager's problems (and the form's own), under each argument. */
  showProblems(errors: readonly ArgError[]): void {
    const byField = problemsByField(errors, this.readProblems);
    for (const [name, el] of this.errors) {
      const messages = byField.get(name) ?? [];
      setText(el, messages.join("; "));
      el.hidden = messages.length === 0;
      this.rows.get(name)?.classList.toggle("is-invalid", messages.length > 0);
      this.rows.get(name)?.querySelector(".or-input")?.setAttribute("aria-invalid", String(messages.length > 0));
    }
    // Problems of no declared argument (the whole set, or an unknown key) show under the form.
    const general: string[] = [];
    for (const [name, messages] of byField) {
      if (!this.errors.has(name)) general.push(...messages.map((m) => (name === "" ? m : `${name}: ${m}`)));
    }
    setText(this.generalError, general.join("; "));
    this.generalError.hidden = general.length === 0;
    const count = [...byField.values()].reduce((n, list) => n + list.length, 0) + (this.jsonProblem ? 1 : 0);
    this.el.dataset["valid"] = String(count === 0);
    setText(this.verdict, count === 0 ? "" : `${count} ${count === 1 ? "problem" : "problems"}: nothing runs until fixed`);
    this.verdict.classList.toggle("is-error", count > 0);
  }

  /** Say what happens now (checking, starting), in the verdict's place. */
  note(text: string): void {
    this.verdict.classList.remove("is-error");
    setText(this.verdict, text);
  }

  private syncJson(): void {
    const { args } = argsFromInputs(this.fields, this.inputs);
    this.json.value = argsJson(args);
    this.jsonProblem = null;
    this.jsonError.hidden = true;
  }
}

function writeControl(control: HTMLInputElement | HTMLTextAreaElement, input: FieldInput | undefined): void {
  if (input === undefined) return;
  if (input.kind === "bool" && control instanceof HTMLInputElement) control.checked = input.value;
  else if (input.kind === "text") control.value = input.text;
}
