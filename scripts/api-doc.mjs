// Generates docs/API.md from the SDK's typings (dist/sdk/index.d.ts and what it re-exports): every
// export with its declaration and doc comments, exactly as a TypeScript user sees them.
// `node scripts/api-doc.mjs` writes the file; test/docs.test.ts checks it is up to date.
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';

import ts from 'typescript';

const ROOT = join(import.meta.dirname, '..');

const KIND = [
  [ts.SyntaxKind.FunctionDeclaration, 'function'],
  [ts.SyntaxKind.ClassDeclaration, 'class'],
  [ts.SyntaxKind.InterfaceDeclaration, 'interface'],
  [ts.SyntaxKind.TypeAliasDeclaration, 'type'],
  [ts.SyntaxKind.VariableDeclaration, 'const'],
];

const HEADER = `# API

The SDK as \`import { … } from 'longhaul'\` sees it: every export of \`dist/sdk/index.d.ts\`, with its
declaration and doc comments. Generated from the typings by \`node scripts/api-doc.mjs\` (a test
fails when this file and the typings differ). The guide with recipes is [USAGE.md](USAGE.md);
error codes are in [ERRORS.md](ERRORS.md).

Entry points: \`send\` (push a file or tree to a node), \`get\` (pull), \`copy\` (node to node),
\`serve\` (run a storage node), \`connect\` (a \`Client\` for readv, list and stats),
\`resolveConfig\` (the CLI's configuration), \`doctor\` (probe the fast paths).
`;

export function renderApi() {
  const index = join(ROOT, 'dist', 'sdk', 'index.d.ts');
  const program = ts.createProgram([index], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext });
  const checker = program.getTypeChecker();
  const exports = checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(index)));
  const sections = [];
  for (const sym of [...exports].sort((a, b) => a.name.localeCompare(b.name))) {
    const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
    for (const decl of target.declarations ?? []) {
      const kind = KIND.find(([k]) => k === decl.kind)?.[1];
      if (!kind) continue;
      // A variable's text lives on its statement; everything else carries its own comments.
      const node = kind === 'const' ? decl.parent.parent : decl;
      const file = node.getSourceFile();
      const text = file.text
        .slice(node.getFullStart(), node.getEnd())
        .replace(/^\s*\n/, '')
        .replace(/^export (declare )?/m, '');
      const from = relative(ROOT, file.fileName).replace(/^dist\//, 'ts/').replace(/\.d\.ts$/, '.ts');
      sections.push(`## ${sym.name}\n\n${kind}, from \`${from}\`\n\n\`\`\`ts\n${dedent(text)}\n\`\`\`\n`);
    }
  }
  return `${HEADER}\n${sections.join('\n')}`;
}

function dedent(text) {
  const lines = text.replace(/\s+$/, '').split('\n');
  const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => /^ */.exec(l)[0].length));
  return lines.map((l) => l.slice(indent)).join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(join(ROOT, 'docs', 'API.md'), renderApi());
}
