// Builds the console into dist/: one bundled ES module and one stylesheet with content-hashed
// names under dist/assets/ (served as immutable), and dist/index.html referencing them.
// Reproducible: same sources + `npm ci` → same bytes.
import * as esbuild from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
mkdirSync(join(dist, 'assets'), { recursive: true });

const hash = (buf) => createHash('sha256').update(buf).digest('hex').slice(0, 12);

const js = await esbuild.build({
  entryPoints: [join(root, 'src/main.js')],
  bundle: true,
  format: 'esm',
  target: ['chrome110', 'firefox115', 'safari16'],
  minify: true,
  sourcemap: false,
  legalComments: 'none',
  write: false,
  charset: 'utf8',
});
const jsBytes = js.outputFiles[0].contents;
const jsName = `app-${hash(jsBytes)}.js`;
writeFileSync(join(dist, 'assets', jsName), jsBytes);

const css = await esbuild.build({
  entryPoints: [join(root, 'src/styles.css')],
  bundle: true,
  minify: true,
  write: false,
  charset: 'utf8',
});
const cssBytes = css.outputFiles[0].contents;
const cssName = `app-${hash(cssBytes)}.css`;
writeFileSync(join(dist, 'assets', cssName), cssBytes);

const icon = readFileSync(join(root, 'src/icon.svg'));
const iconName = `icon-${hash(icon)}.svg`;
writeFileSync(join(dist, 'assets', iconName), icon);

const html = readFileSync(join(root, 'src/index.html'), 'utf8')
  .replace('%APP_JS%', `/assets/${jsName}`)
  .replace('%APP_CSS%', `/assets/${cssName}`)
  .replace('%ICON%', `/assets/${iconName}`);
writeFileSync(join(dist, 'index.html'), html);
console.log(`built dist/ (${jsName}, ${cssName})`);
