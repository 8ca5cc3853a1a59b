// The file name prebuild-install looks for among local prebuilds, for the package in the current
// folder, as its install script calls it (`prebuild-install [-r napi] || ...`).
const { basename, dirname } = require("node:path");
const pkg = require(`${process.cwd()}/package.json`);
const home = dirname(require.resolve("prebuild-install/package.json", { paths: [process.cwd()] }));
const flags = pkg.scripts.install.split("||")[0].trim().split(/\s+/).slice(1);
process.argv = [process.argv[0], "prebuild-install", ...flags];
const rc = require(`${home}/rc.js`)(pkg);
const { getDownloadUrl } = require(`${home}/util.js`);
process.stdout.write(basename(getDownloadUrl({ ...rc, pkg })));
