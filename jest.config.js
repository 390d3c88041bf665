// @swc/jest rather than ts-jest: it transforms in milliseconds instead of type-checking every
// file again; `npm run typecheck` (tsc --noEmit over src, tests, examples) is the type gate,
// and it runs inside `npm test` before jest.
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  transform: {
    "^.+\\.ts$": ["@swc/jest", {
      jsc: { parser: { syntax: "typescript", decorators: true }, transform: { legacyDecorator: true }, target: "es2022" },
      module: { type: "commonjs" },
    }],
  },
  moduleNameMapper: {
    "^warren$": "<rootDir>/src/index.ts",
    "^warren/actors$": "<rootDir>/actors/index.ts",
    "^warren/testing$": "<rootDir>/src/testing/index.ts",
    "^warren/accelerators$": "<rootDir>/src/accelerators.ts",
  },
  testTimeout: 60000,
  maxWorkers: 1,
};
