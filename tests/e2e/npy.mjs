// Minimal reader for NumPy .npy files (v1, v2, v3) holding little-endian float32 (or float64) arrays, a float32 .npy writer, and a float32 .safetensors reader.
import { readFileSync } from 'node:fs';

/** Parses an .npy buffer: { shape: number[], data: Float32Array }. */
export function parseNpy(buf) {
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error('not an .npy file (bad magic)');
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString(major === 3 ? 'utf8' : 'latin1', start, start + headerLen);
  const descr = header.match(/'descr':\s*'([^']+)'/)?.[1];
  const fortran = header.match(/'fortran_order':\s*(True|False)/)?.[1];
  const shapeText = header.match(/'shape':\s*\(([^)]*)\)/)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new Error(`bad .npy header: ${header}`);
  if (fortran === 'True') throw new Error('fortran_order .npy files are not supported');
  const shape = shapeText.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  const bytes = buf.subarray(offset);
  let data;
  if (descr === '<f4') {
    data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = bytes.readFloatLE(i * 4);
  } else if (descr === '<f8') {
    data = Float32Array.from({ length: count }, (_, i) => bytes.readDoubleLE(i * 8));
  } else {
    throw new Error(`unsupported .npy dtype ${descr} (want <f4)`);
  }
  if (bytes.length < count * (descr === '<f4' ? 4 : 8)) throw new Error('.npy file is truncated');
  return { shape, dtype: descr, data };
}

export function readNpy(path) {
  try {
    return parseNpy(readFileSync(path));
  } catch (e) {
    throw new Error(`${path}: ${e.message}`);
  }
}

/** A float32 array as .npy bytes of `shape` (channels first for an image), as numpy writes them. */
export function npyBytes(data, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head.writeUInt8(1, 6);
  head.writeUInt8(0, 7);
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

/** A float32 .safetensors file's arrays by key (the fixtures' format). */
export function readSafetensorsF32(path) {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.toString('utf8', 8, 8 + n));
  const out = {};
  for (const [k, v] of Object.entries(header)) {
    if (k === '__metadata__') continue;
    const [a, b] = v.data_offsets;
    out[k] = new Float32Array(buf.buffer.slice(buf.byteOffset + 8 + n + a, buf.byteOffset + 8 + n + b));
  }
  return out;
}
