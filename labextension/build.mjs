// Bundles each widget view into one self-contained ESM file (plus its CSS) in boonb/static/.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";

const outdir = fileURLToPath(new URL("../boonb/static/", import.meta.url));

await build({
  entryPoints: { traceviewer: "src/traceviewer/index.ts", chat: "src/chat/index.ts" },
  bundle: true,
  format: "esm",
  target: "es2020",
  outdir,
  minify: true,
  sourcemap: false,
  legalComments: "none",
  logLevel: "info",
});
