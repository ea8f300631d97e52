import assert from "node:assert/strict";
import { test } from "node:test";
import { canonicalArchitecture, parseImageMetadata } from "../../src/images/metadata.js";

test("a complete metadata.yaml parses", () => {
  const md = parseImageMetadata(`architecture: amd64
creation_date: 1424284563
expiry_date: 1900000000
properties:
  os: Ubuntu
  release: 22.04
templates:
  /etc/hosts:
    when: [create, rename]
    template: hosts.tpl
    properties: { foo: bar }
  /etc/network/interfaces:
    when: [create]
    template: interfaces.tpl
    create_only: true
`);
  assert.equal(md.architecture, "amd64");
  assert.equal(md.creation_date, 1424284563);
  assert.equal(md.expiry_date, 1900000000);
  assert.deepEqual(md.properties, { os: "Ubuntu", release: "22.04" });
  assert.deepEqual(md.templates["/etc/hosts"], { when: ["create", "rename"], create_only: false, template: "hosts.tpl", properties: { foo: "bar" } });
  assert.equal(md.templates["/etc/network/interfaces"]!.create_only, true);
});

test("optional fields default to empty", () => {
  const md = parseImageMetadata("architecture: x86_64\ncreation_date: 1\n");
  assert.deepEqual(md, { architecture: "x86_64", creation_date: 1, expiry_date: 0, properties: {}, templates: {} });
});

test("architecture names and aliases follow LXD's table", () => {
  assert.equal(canonicalArchitecture("amd64"), "x86_64");
  assert.equal(canonicalArchitecture("arm64"), "aarch64");
  assert.equal(canonicalArchitecture("ppc64el"), "ppc64le");
  assert.equal(canonicalArchitecture("x86_64"), "x86_64");
  assert.equal(canonicalArchitecture("pdp11"), undefined);
});

test("faults are named", () => {
  const cases: [string, RegExp][] = [
    ["architecture: [", /not valid YAML/],
    ["- a\n- b\n", /mapping at the top level/],
    ["creation_date: 1\n", /missing architecture/],
    ["architecture: 64\ncreation_date: 1\n", /architecture must be a string/],
    ["architecture: pdp11\ncreation_date: 1\n", /unknown architecture "pdp11"/],
    ["architecture: x86_64\n", /missing creation_date/],
    ["architecture: x86_64\ncreation_date: yesterday\n", /creation_date must be a Unix timestamp/],
    ["architecture: x86_64\ncreation_date: -5\n", /creation_date must be a Unix timestamp/],
    ["architecture: x86_64\ncreation_date: 1\nexpiry_date: 1.5\n", /expiry_date must be a Unix timestamp/],
    ["architecture: x86_64\ncreation_date: 1\nproperties: [a]\n", /properties must be a mapping/],
    ["architecture: x86_64\ncreation_date: 1\nproperties: {a: {b: c}}\n", /properties\.a must be a string/],
    ["architecture: x86_64\ncreation_date: 1\ntemplates: {etc/hosts: {template: h.tpl}}\n", /templates\["etc\/hosts"\]: the path must be absolute/],
    ["architecture: x86_64\ncreation_date: 1\ntemplates: {/etc/hosts: {when: [create]}}\n", /templates\["\/etc\/hosts"\]\.template must name a file/],
    ["architecture: x86_64\ncreation_date: 1\ntemplates: {/etc/hosts: {template: ../../x}}\n", /must stay inside templates/],
    ["architecture: x86_64\ncreation_date: 1\ntemplates: {/etc/hosts: {template: h, when: [boot]}}\n", /unknown trigger "boot"/],
    ["architecture: x86_64\ncreation_date: 1\ntemplates: {/etc/hosts: {template: h, create_only: maybe}}\n", /create_only must be true or false/],
  ];
  for (const [yaml, err] of cases) {
    assert.throws(() => parseImageMetadata(yaml), (e: Error) => {
      assert.match(e.message, /^Invalid metadata\.yaml: /, yaml);
      assert.match(e.message, err, yaml);
      assert.equal((e as { status?: number }).status, 400);
      return true;
    });
  }
});
