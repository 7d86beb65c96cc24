// Lists the entries of a zip file (a .vsix is one) from its central directory: name, compressed and
// uncompressed size; and extracts them. Plain Node, no dependencies; enough for the packager's self-check and its test.
// Zip64 archives (over 4 GiB or 65535 entries) are refused with a clear error: a .vsix is never that big.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

const EOCD_SIG = 0x06054b50;
const CEN_SIG = 0x02014b50;
const LOC_SIG = 0x04034b50;

/** @returns {{ name: string, size: number, compressedSize: number }[]} */
export function zipEntries(file) {
  return zipCentral(fs.readFileSync(file), file).map(({ name, size, compressedSize }) => ({
    name,
    size,
    compressedSize,
  }));
}

function zipCentral(buf, file) {
  // The end-of-central-directory record is in the last 22 + 65535 (comment) bytes.
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--) {
    if (buf.readUInt32LE(i) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${file}: not a zip file (no end-of-central-directory record)`);
  const count = buf.readUInt16LE(eocd + 10);
  const offset = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || offset === 0xffffffff) throw new Error(`${file}: zip64 archives are not supported`);
  const entries = [];
  let p = offset;
  for (let n = 0; n < count; n++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== CEN_SIG) {
      throw new Error(`${file}: central directory entry ${n} at byte ${p} is corrupt`);
    }
    const method = buf.readUInt16LE(p + 10);
    const compressedSize = buf.readUInt32LE(p + 20);
    const size = buf.readUInt32LE(p + 24);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    const localOffset = buf.readUInt32LE(p + 42);
    entries.push({ name, size, compressedSize, method, localOffset });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** Writes every entry of the zip under dir (stored or deflated entries only); returns the names written. */
export function zipExtract(file, dir) {
  const buf = fs.readFileSync(file);
  const names = [];
  for (const e of zipCentral(buf, file)) {
    if (e.name.endsWith('/')) continue;
    const target = path.resolve(dir, e.name);
    if (!target.startsWith(path.resolve(dir) + path.sep))
      throw new Error(`${file}: entry ${e.name} escapes the folder`);
    const lh = e.localOffset;
    if (buf.readUInt32LE(lh) !== LOC_SIG) throw new Error(`${file}: local header of ${e.name} is corrupt`);
    const start = lh + 30 + buf.readUInt16LE(lh + 26) + buf.readUInt16LE(lh + 28);
    const raw = buf.subarray(start, start + e.compressedSize);
    let data;
    if (e.method === 0) data = raw;
    else if (e.method === 8) data = zlib.inflateRawSync(raw);
    else throw new Error(`${file}: entry ${e.name} uses compression method ${e.method}`);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, data);
    names.push(e.name);
  }
  return names;
}
