// Bundles each widget view into one self-contained ESM file (plus its CSS) in boonb/static/.
// A view is a folder of src/ with an index.ts (anywidget's entry point); src/shared/ has none.
import { build } from "esbuild";
import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

const src = fileURLToPath(new URL("src/", import.meta.url));
const outdir = fileURLToPath(new URL("../boonb/static/", import.meta.url));

const entryPoints = Object.fromEntries(
  readdirSync(src, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(`${src}${entry.name}/index.ts`))
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
