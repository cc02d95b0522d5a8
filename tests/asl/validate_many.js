// asl-validator's checks on many files in one node process (its CLI is one process per file,
// most of it spent starting node and loading the validator). Prints {path: {valid, output}} as
// JSON, `output` being what the CLI would print for that file.
"use strict";

const fs = require("fs");
const path = require("path");

const validator = require(path.join(__dirname, "..", "..", "node_modules", "asl-validator"));

// The CLI's options: commander turns --no-arn-check / --no-path-check into `arnCheck` and
// `pathCheck`, so the `noArnCheck` / `noPathCheck` the CLI reads are never set and it always
// checks both.
const OPTIONS = { checkArn: true, checkPaths: true };

const results = {};
for (const file of process.argv.slice(2)) {
  try {
    const result = validator(JSON.parse(fs.readFileSync(file).toString()), OPTIONS);
    results[file] = result.isValid
      ? { valid: true, output: `\u2713 State machine definition "${file}" is valid` }
      : {
          valid: false,
          output: `\u2715 State machine definition "${file}" is invalid:\n ${result.errorsText()}`,
        };
  } catch (err) {
    results[file] = { valid: false, output: `Validator exception: ${err && err.stack}` };
  }
}
process.stdout.write(JSON.stringify(results));
