// `npm run schema`: write schemas/haqa.schema.json, the recipe schema that config/recipeSchema.ts builds
// from the recipe's own sections and the method table, for editors that validate YAML themselves
// (package.json yamlValidation). test/unit/config-methods.test.ts fails when the file and the build
// differ, so a change to the table is one edit and this command. Written to a temporary file and renamed,
// so a failed run leaves the old file whole.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildRecipeSchema } from '../server/src/config/recipeSchema';

const out = path.join(__dirname, '..', 'schemas', 'haqa.schema.json');
const tmp = `${out}.${process.pid}.tmp`;
fs.writeFileSync(tmp, JSON.stringify(buildRecipeSchema(), null, 2) + '\n');
fs.renameSync(tmp, out);
console.log(`wrote ${path.relative(process.cwd(), out)}`);
