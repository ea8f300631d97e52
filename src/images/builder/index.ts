/**
 * Lodge's image builder: a small YAML definition → an LXD-format image.
 *
 * Public API:
 * - `loadDefinition(path)` / `parseDefinition(text)` → ImageDefinition, or a DefinitionError
 *   whose `problems` name each bad field;
 * - `buildImage(def, {outDir, format: "unified" | "split", compression, onProgress})` →
 *   `{files, fingerprint, metadata, format, size}`; `files` are in LXD's order (unified
 *   tarball, or metadata tarball then rootfs.squashfs), ready for `lxc image import`;
 * - `imageFingerprint(files)`: SHA-256 over the files in turn, as LXD computes it.
 *
 * `lodge image build DEF.yaml [--split] [--import]` is meant to be a thin wrapper over these.
 */
export { buildImage, UnsupportedTargetError, type BuildOptions, type BuildResult, type ImageFormat } from "./build.js";
export { DefinitionError, loadDefinition, parseDefinition, validateDefinition, type ImageDefinition } from "./definition.js";
export { imageFingerprint, type Compression, type ImageMetadata } from "./pack.js";
export type { ProgressFn } from "./command.js";
