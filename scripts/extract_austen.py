#!/usr/bin/env python3
"""Extract Jane Austen's six novels into bsz_lr/corpora/austen.txt.xz.

Provenance: the Debian bookworm package r-cran-janeaustenr 1.0.0-1 (the CRAN
package janeaustenr by Julia Silge, whose texts come from Project Gutenberg;
the novels are in the public domain). The package stores each novel as an R
character vector (one element per line) in its lazy-load data base
usr/lib/R/site-library/janeaustenr/data/Rdata.{rdx,rdb}. This script, using
only the standard library, unpacks the .deb (an `ar` archive holding
data.tar.xz), reads the gzip'd R-serialized index (Rdata.rdx), decompresses
each object's chunk from Rdata.rdb (4-byte big-endian length + zlib stream)
and decodes it with a minimal reader for R's XDR serialization format.

Output text: novels in publication order (see ORDER), each novel's lines
joined with "\n", novels separated by "\n\n", no trailing newline, UTF-8.
Writes austen.txt.xz (xz preset 9) and austen.sha256
("<sha256>  <nbytes>  austen.txt", sha256 of the uncompressed text).

Usage: python scripts/extract_austen.py [path/to/r-cran-janeaustenr_1.0.0-1_all.deb]
(without a path it runs `apt-get download r-cran-janeaustenr` in a temp dir).
"""
import glob, gzip, hashlib, io, lzma, os, struct, subprocess, sys, tarfile, tempfile, zlib

ORDER = ["sensesensibility", "prideprejudice", "mansfieldpark",  # 1811, 1813, 1814
         "emma", "northangerabbey", "persuasion"]                  # 1815, 1818, 1818
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bsz_lr", "corpora")
DB = "usr/lib/R/site-library/janeaustenr/data/Rdata"


def ar_members(blob):
    """Yield (name, data) from a System V / GNU `ar` archive (a .deb)."""
    assert blob[:8] == b"!<arch>\n", "not an ar archive"
    pos = 8
    while pos + 60 <= len(blob):
        hdr = blob[pos:pos + 60]
        name, size = hdr[:16].decode().strip().rstrip("/"), int(hdr[48:58])
        yield name, blob[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)


class RReader:
    """Minimal unserializer for R's XDR format ("X\\n"), versions 2 and 3."""
    NIL, SYM, LIST, CHAR, LGL, INT, REAL, STR, VEC, REF = 254, 1, 2, 9, 10, 13, 14, 16, 19, 255

    def __init__(self, data):
        assert data[:2] == b"X\n", "only XDR serialization is supported"
        self.d, self.p, self.refs = data, 2, []
        version = self.int(); self.int(); self.int()  # version, writer R, min R
        if version == 3:
            n = self.int(); self.p += n  # skip native encoding name

    def int(self):
        (v,) = struct.unpack_from(">i", self.d, self.p); self.p += 4; return v

    def item(self):
        flags = self.int()
        t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if t == self.NIL:
            return None
        if t == self.REF:
            return self.refs[(flags >> 8 or self.int()) - 1]
        if t == self.SYM:
            sym = self.item(); self.refs.append(sym); return sym
        if t == self.LIST:  # pairlist -> dict (tags are symbols)
            out = {}
            while t == self.LIST:
                if has_attr: self.item()
                tag = self.item() if has_tag else len(out)
                out[tag] = self.item()
                flags = self.int(); t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
            assert t == self.NIL, "malformed pairlist"
            return out
        if t == self.CHAR:
            n = self.int()
            if n == -1:
                return None  # NA_character_
            s = self.d[self.p:self.p + n]; self.p += n
            return s.decode("latin-1" if flags & (1 << 14) else "utf-8")
        n = self.int()
        if t in (self.LGL, self.INT):
            val = list(struct.unpack_from(">%di" % n, self.d, self.p)); self.p += 4 * n
        elif t == self.REAL:
            val = list(struct.unpack_from(">%dd" % n, self.d, self.p)); self.p += 8 * n
        elif t in (self.STR, self.VEC):
            val = [self.item() for _ in range(n)]
        else:
            raise ValueError("unsupported SEXP type %d" % t)
        attrs = self.item() if has_attr else {}
        if "names" in attrs:  # named vector/list -> dict
            return dict(zip(attrs["names"], val))
        return val


def extract(deb_path):
    members = dict(ar_members(open(deb_path, "rb").read()))
    tar = tarfile.open(fileobj=io.BytesIO(lzma.decompress(members["data.tar.xz"])))
    get = lambda suffix: tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith(DB + suffix))).read()
    index, rdb = RReader(gzip.decompress(get(".rdx"))).item(), get(".rdb")
    assert sorted(index["variables"]) == sorted(ORDER), index["variables"].keys()
    novels = {}
    for name in ORDER:
        off, length = index["variables"][name]
        chunk = rdb[off:off + length]
        raw = zlib.decompress(chunk[4:])
        assert len(raw) == struct.unpack(">I", chunk[:4])[0]
        lines = RReader(raw).item()
        novels[name] = "\n".join("" if s is None else s for s in lines)
    return "\n\n".join(novels[n] for n in ORDER).encode("utf-8")


def main():
    if len(sys.argv) > 1:
        text = extract(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["apt-get", "download", "r-cran-janeaustenr"], cwd=tmp, check=True)
            text = extract(glob.glob(os.path.join(tmp, "r-cran-janeaustenr_*.deb"))[0])
    sha = hashlib.sha256(text).hexdigest()
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "austen.txt.xz"), "wb") as f:  # deterministic: fixed preset, no timestamps
        f.write(lzma.compress(text, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=9))
    with open(os.path.join(OUT_DIR, "austen.sha256"), "w") as f:
        f.write("%s  %d  austen.txt\n" % (sha, len(text)))
    print("sha256 %s  bytes %d" % (sha, len(text)))


if __name__ == "__main__":
    main()
