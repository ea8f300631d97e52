import test from "node:test";
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import {
  csvField,
  displayWidth,
  renderCsv,
  renderDetails,
  renderList,
  renderObject,
  renderTable,
  shortTime,
  type Column,
} from "../../src/cli/output.js";

interface Row {
  name: string;
  state: string;
  ips: string[];
}
const COLUMNS: Column<Row>[] = [
  { header: "NAME", value: (r) => r.name },
  { header: "STATE", value: (r) => r.state },
  { header: "IPV4", value: (r) => r.ips.join("\n") },
];
const ROWS: Row[] = [
  { name: "c1", state: "RUNNING", ips: ["10.0.0.2 (eth0)"] },
  { name: "web-server", state: "STOPPED", ips: [] },
];

test("a table is box-drawn like lxc's, with a rule under every row", () => {
  assert.equal(
    renderTable(["ID", "TYPE"], [["a", "task"], ["bcd", "x"]]),
    [
      "+-----+------+",
      "| ID  | TYPE |",
      "+-----+------+",
      "| a   | task |",
      "+-----+------+",
      "| bcd | x    |",
      "+-----+------+",
      "",
    ].join("\n"),
  );
});

test("an empty table still shows its header", () => {
  assert.equal(renderTable(["ID", "STATUS"], []), "+----+--------+\n| ID | STATUS |\n+----+--------+\n");
});

test("a multi-line cell spans several lines of its row", async () => {
  const out = await renderList(COLUMNS, [{ name: "c1", state: "RUNNING", ips: ["10.0.0.2", "10.0.0.3"] }], "table");
  assert.equal(
    out,
    [
      "+------+---------+----------+",
      "| NAME | STATE   | IPV4     |",
      "+------+---------+----------+",
      "| c1   | RUNNING | 10.0.0.2 |",
      "|      |         | 10.0.0.3 |",
      "+------+---------+----------+",
      "",
    ].join("\n"),
  );
});

test("columns are as wide as their widest cell, counting wide characters twice", () => {
  assert.equal(displayWidth("abc"), 3);
  assert.equal(displayWidth("日本"), 4);
  assert.equal(displayWidth("é"), 1);
  const lines = renderTable(["N"], [["日本"]]).split("\n");
  assert.equal(lines[0], "+------+");
  assert.equal(lines[3], "| 日本 |");
});

test("csv has no header and quotes per RFC 4180", async () => {
  assert.equal(await renderList(COLUMNS, ROWS, "csv"), "c1,RUNNING,10.0.0.2 (eth0)\nweb-server,STOPPED,\n");
  assert.equal(csvField("plain"), "plain");
  assert.equal(csvField("a,b"), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField("two\nlines"), '"two\nlines"');
  assert.equal(csvField("cr\r"), '"cr\r"');
  assert.equal(csvField(" padded"), '" padded"');
  assert.equal(csvField(""), "");
  assert.equal(renderCsv([["a,1", 'q"'], ["", "x"]]), '"a,1","q"""\n,x\n');
});

test("json and yaml lists are the objects themselves, not the columns", async () => {
  assert.deepEqual(JSON.parse(await renderList(COLUMNS, ROWS, "json")), ROWS);
  assert.deepEqual(parseYaml(await renderList(COLUMNS, ROWS, "yaml")), ROWS);
  assert.equal(await renderList(COLUMNS, [], "json"), "[]\n");
});

test("an object is yaml unless json is asked for", async () => {
  const obj = { api_version: "1.0", config: { "user.x": "1" }, public: false, n: 3, cert: "x".repeat(200) };
  const yaml = await renderObject(obj, "yaml");
  assert.match(yaml, /^api_version: "1\.0"$/m, "a string that looks like a number stays a string");
  assert.ok(yaml.includes("x".repeat(200)), "long values are not folded");
  assert.deepEqual(parseYaml(yaml), obj);
  assert.equal(await renderObject(obj, "table"), yaml);
  assert.deepEqual(JSON.parse(await renderObject(obj, "json")), obj);
});

test("details align their values and continue multi-line ones", () => {
  assert.equal(
    renderDetails(
      [
        ["Server", "lodge 0.1.0"],
        ["Addresses", "10.0.0.1:8443\n[::1]:8443"],
        ["Config", ""],
      ],
      "table",
    ),
    "Server:    lodge 0.1.0\nAddresses: 10.0.0.1:8443\n           [::1]:8443\nConfig:\n",
  );
  assert.equal(renderDetails([["A", "x,y"]], "csv"), 'A,"x,y"\n');
});

test("timestamps are shown as lxc does, and the zero time as nothing", () => {
  assert.equal(shortTime("2024-01-31T14:05:59.123Z"), "2024/01/31 14:05 UTC");
  assert.equal(shortTime("0001-01-01T00:00:00Z"), "");
  assert.equal(shortTime("garbage"), "");
});
