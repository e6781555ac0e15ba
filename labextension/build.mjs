// The two outputs of this npm project (DESIGN.md section 1):
// 1. each widget view as one self-contained ESM file (plus its CSS) in boonb/static/, for
//    anywidget: a view is a folder of src/ with an index.ts; src/shared/ has none, and
//    src/lab/ is the JupyterLab plugin, not a widget;
// 2. the prebuilt JupyterLab 4 extension in boonb/labextension/: esbuild compiles
//    src/lab/index.ts (and the views it hosts, with their CSS) into lib/, then JupyterLab's
//    builder (webpack module federation) turns lib/ into the extension, sharing
//    @jupyterlab/* and @lumino/* with the running Lab instead of bundling them.
//
// `node build.mjs --widgets` builds the first only (a quick loop on a view).
// The builder runs as `jupyter labextension build` does (through Python, see PROBE) with
// `--core-path` set to the installed jupyterlab's staging folder: the extension is built against the Lab that is installed, offline
// (without it, JupyterLab 4.6's builder downloads the core metadata from npm or GitHub).
// The Python is $BOONB_PYTHON (set by hatch_build.py and the Makefile), else the
// repository's .venv, else python3 on PATH.
import { build } from "esbuild";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL("./", import.meta.url));
const src = `${here}src/`;
const outdir = fileURLToPath(new URL("../boonb/static/", import.meta.url));
const widgetsOnly = process.argv.includes("--widgets");

/** Folders of src/ that are not widgets: the shared code, and the lab plugin. */
const NOT_WIDGETS = new Set(["shared", "lab"]);

const entryPoints = Object.fromEntries(
  readdirSync(src, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && !NOT_WIDGETS.has(entry.name))
    .filter((entry) => existsSync(`${src}${entry.name}/index.ts`))
    .map((entry) => [entry.name, `src/${entry.name}/index.ts`])
    .sort(([a], [b]) => a.localeCompare(b)),
);
if (Object.keys(entryPoints).length === 0) {
  throw new Error(`no views found: expected src/<view>/index.ts under ${src}`);
}

await build({
  entryPoints,
  bundle: true,
  format: "esm",
  target: "es2020",
  outdir,
  minify: true,
  sourcemap: false,
  legalComments: "none",
  logLevel: "info",
});

async function buildLabExtension() {
  const lib = `${here}lib/`;
  rmSync(lib, { recursive: true, force: true });
  // JupyterLab's own packages stay imports: the builder shares them with the running Lab.
  await build({
    entryPoints: { index: "src/lab/index.ts" },
    bundle: true,
    format: "esm",
    target: "es2020",
    outdir: lib,
    external: ["@jupyterlab/*", "@lumino/*"],
    minify: false,
    sourcemap: false,
    legalComments: "none",
    logLevel: "info",
  });
  const python = findPython();
  // JupyterLab 4.6 moved the builder to the jupyter_builder package (its `jupyter labextension
  // build` only calls the `jupyter-builder` script, which need not be on PATH); earlier 4.x
  // build in jupyterlab.labextensions itself.
  const probe = JSON.parse(
    run(python, ["-c", PROBE], {
      capture: true,
      failure:
        `building the JupyterLab extension needs the jupyterlab Python package (4.2 or later) ` +
        `in ${python}: install it there (pip install 'jupyterlab>=4.2,<5'), or set ` +
        `BOONB_PYTHON to a Python that has it.`,
    }),
  );
  run(python, ["-m", probe.module, "build", "--core-path", probe.core, here], {
    capture: false,
    failure: "`jupyter labextension build` failed: see its output above.",
  });
}

/** Where the installed Lab's core package is, and which module builds extensions. */
const PROBE = `
import importlib.util, json, pathlib, jupyterlab
builder = importlib.util.find_spec("jupyter_builder") is not None
print(json.dumps({
    "core": str(pathlib.Path(jupyterlab.__file__).parent / "staging"),
    "module": "jupyter_builder.main" if builder else "jupyterlab.labextensions",
}))
`;

function findPython() {
  if (process.env.BOONB_PYTHON) return process.env.BOONB_PYTHON;
  const venv = fileURLToPath(new URL("../.venv/bin/python", import.meta.url));
  return existsSync(venv) ? venv : "python3";
}

function run(command, args, { capture, failure }) {
  const result = spawnSync(command, args, {
    cwd: here,
    encoding: "utf8",
    stdio: capture ? ["ignore", "pipe", "inherit"] : "inherit",
  });
  if (result.error !== undefined || result.status !== 0) {
    const why = result.error !== undefined ? ` (${result.error.message})` : ` (exit ${result.status})`;
    console.error(`boonb: ${failure}${why}`);
    process.exit(1);
  }
  return capture ? result.stdout : "";
}

// Last: the helpers and constants above are initialised by now.
if (!widgetsOnly) await buildLabExtension();
