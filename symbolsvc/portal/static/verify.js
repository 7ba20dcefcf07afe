// The portal's in-browser verifier: is this record in the access log, under the log's key?
//
// Nothing here trusts the portal. Given a record's leaf bytes, its inclusion proof and a
// signed checkpoint, it checks, with the browser's own WebCrypto:
//   1. the checkpoint note carries a valid Ed25519 signature by the log's verifier key
//      (c2sp.org/signed-note; the key is the one printed on the page, name+keyid+key);
//   2. the note text is a c2sp.org/tlog-checkpoint (origin, tree size, root hash);
//   3. the RFC 9162 §2.1.3.2 inclusion proof leads from SHA-256(0x00 || leaf) to that root;
//   4. the leaf decodes (docs/ACCESS_LOG.md, versions 1 and 2) to the record shown;
//   5. when the deployment has witnesses: at least `quorum` of the witness keys shown on the
//      page validly cosigned the checkpoint (c2sp.org/tlog-cosignature, cosignature/v1).
// Any failure throws a VerifyError saying which step failed. Tree arithmetic uses BigInt
// (JavaScript's bit operators are 32-bit). Tested against the server's vectors in
// tests/e2e/test_portal_verifier.py.
"use strict";

(function (global) {
  class VerifyError extends Error {}

  const enc = new TextEncoder();
  const dec = new TextDecoder("utf-8", { fatal: true });

  function b64(text) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
      throw new VerifyError("not base64");
    }
    const bin = atob(text);
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let pos = 0;
    for (const p of parts) { out.set(p, pos); pos += p.length; }
    return out;
  }

  function equal(a, b) {
    return a.length === b.length && a.every((x, i) => x === b[i]);
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  // RFC 9162 §2.1.1
  const leafHash = (leaf) => sha256(concat(Uint8Array.of(0), leaf));
  const nodeHash = (l, r) => sha256(concat(Uint8Array.of(1), l, r));

  // RFC 9162 §2.1.3.2, steps 1-5; index and size are BigInt.
  async function rootFromInclusionProof(hash, index, size, proof) {
    if (hash.length !== 32) throw new VerifyError("leaf hash is not 32 bytes");
    if (index >= size) throw new VerifyError("leaf index is not below the tree size");
    let fn = index, sn = size - 1n, r = hash;
    for (const p of proof) {
      if (p.length !== 32) throw new VerifyError("a proof hash is not 32 bytes");
      if (sn === 0n) throw new VerifyError("the inclusion proof is too long");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n; sn >>= 1n;
    }
    if (sn !== 0n) throw new VerifyError("the inclusion proof is too short");
    return r;
  }

  // c2sp.org/signed-note verifier key: name+hash+base64(type || 32-byte Ed25519 key), type
  // 0x01 for the log's note signatures, 0x04 for witnesses' cosignature/v1
  async function parseVkey(vkey, type = 1) {
    const parts = vkey.trim().split("+");
    if (parts.length < 3) throw new VerifyError("the verifier key is malformed");
    const [name, hashHex] = parts;
    const raw = b64(parts.slice(2).join("+"));
    if (!name || /\s/.test(name) || !/^[0-9a-f]{8}$/.test(hashHex) || raw.length !== 33 ||
        raw[0] !== type) {
      throw new VerifyError("the verifier key is malformed");
    }
    const keyId = (await sha256(concat(enc.encode(name + "\n"), raw))).slice(0, 4);
    if ([...keyId].map((b) => b.toString(16).padStart(2, "0")).join("") !== hashHex) {
      throw new VerifyError("the verifier key's hash does not match its key");
    }
    return { name, keyId, publicKey: raw.slice(1) };
  }

  // Verify a signed note against one key; return its text. Other keys' lines are ignored.
  async function verifyNote(note, vkey) {
    const key = await parseVkey(vkey);
    const split = note.lastIndexOf("\n\n");
    if (split < 0) throw new VerifyError("the checkpoint has no signature");
    const text = note.slice(0, split + 1);
    const block = note.slice(split + 2);
    if (!block.endsWith("\n")) throw new VerifyError("the checkpoint's signatures are malformed");
    let cryptoKey;
    try {
      cryptoKey = await crypto.subtle.importKey("raw", key.publicKey, { name: "Ed25519" },
                                                false, ["verify"]);
    } catch (e) {
      throw new VerifyError("unsupported");
    }
    let verified = false;
    for (const line of block.slice(0, -1).split("\n")) {
      const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
      if (!m) throw new VerifyError("a signature line is malformed");
      const blob = b64(m[2]);
      if (m[1] !== key.name || blob.length < 4 || !equal(blob.slice(0, 4), key.keyId)) continue;
      const ok = blob.length === 68 &&
        await crypto.subtle.verify({ name: "Ed25519" }, cryptoKey, blob.slice(4), enc.encode(text));
      if (!ok) throw new VerifyError("the log's signature on the checkpoint does not verify");
      verified = true;
    }
    if (!verified) {
      const err = new VerifyError("the checkpoint is not signed by the log's key");
      err.unsigned = true;
      throw err;
    }
    return text;
  }

  // Verify against the log's keys (one per line: during a log-key rotation the checkpoint
  // carries both signatures); a signature by any listed key that fails is a failure.
  async function verifyNoteByAny(note, vkeys) {
    let last = null;
    for (const vkey of vkeys.split("\n").map((l) => l.trim()).filter(Boolean)) {
      try {
        return await verifyNote(note, vkey);
      } catch (err) {
        if (!err.unsigned) throw err;
        last = err;
      }
    }
    throw last || new VerifyError("no verifier key is shown");
  }

  // c2sp.org/tlog-cosignature (cosignature/v1): how many of the witnesses' keys validly
  // cosigned the checkpoint text; a line by a listed witness that fails is a failure.
  // Signature = key ID (4) || u64 timestamp || Ed25519("cosignature/v1\ntime T\n" || text).
  async function countCosignatures(note, witnessVkeys) {
    const split = note.lastIndexOf("\n\n");
    const text = note.slice(0, split + 1);
    const lines = note.slice(split + 2).split("\n").filter(Boolean);
    const good = new Set();
    for (const vkey of witnessVkeys) {
      const w = await parseVkey(vkey, 4);
      const key = await crypto.subtle.importKey("raw", w.publicKey, { name: "Ed25519" }, false,
                                                ["verify"]);
      for (const line of lines) {
        const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
        if (!m || m[1] !== w.name) continue;
        const blob = b64(m[2]);
        if (blob.length < 4 || !equal(blob.slice(0, 4), w.keyId)) continue;
        if (blob.length !== 76) throw new VerifyError(`the cosignature by ${w.name} is malformed`);
        const time = new DataView(blob.buffer, blob.byteOffset + 4, 8).getBigUint64(0);
        const message = enc.encode(`cosignature/v1\ntime ${time}\n${text}`);
        if (!await crypto.subtle.verify({ name: "Ed25519" }, key, blob.slice(12), message)) {
          throw new VerifyError(`the cosignature by ${w.name} does not verify`);
        }
        good.add(w.name);
      }
    }
    return good.size;
  }

  // c2sp.org/tlog-checkpoint body: origin, decimal size, base64 root, optional extensions
  function parseCheckpoint(text) {
    const lines = text.slice(0, -1).split("\n");
    if (!text.endsWith("\n") || lines.length < 3 || lines.some((l) => !l) ||
        !/^(0|[1-9][0-9]{0,19})$/.test(lines[1])) {
      throw new VerifyError("the checkpoint is malformed");
    }
    const root = b64(lines[2]);
    if (root.length !== 32) throw new VerifyError("the checkpoint's root is not 32 bytes");
    return { origin: lines[0], size: BigInt(lines[1]), root };
  }

  // docs/ACCESS_LOG.md leaf, version 1 (or 2 with extensions): the fields a person sees
  function decodeLeaf(leaf) {
    const view = new DataView(leaf.buffer, leaf.byteOffset, leaf.byteLength);
    let pos = 0;
    const need = (n) => { if (pos + n > leaf.length) throw new VerifyError("the leaf is truncated"); };
    const u8 = () => { need(1); return view.getUint8(pos++); };
    const u16 = () => { need(2); const v = view.getUint16(pos); pos += 2; return v; };
    const str = () => { const n = u16(); need(n); const s = dec.decode(leaf.slice(pos, pos + n)); pos += n; return s; };
    const version = u8();
    if (version !== 1 && version !== 2) throw new VerifyError("unknown leaf version");
    const kind = u8();
    need(8);
    const timeUs = view.getBigUint64(pos); pos += 8;
    const rec = { version, kind, timeUs, requester: str(), officeWork: str(), infoItem: str(),
                  exchangeId: str(), providers: [] };
    for (let n = u16(); n > 0; n--) rec.providers.push(str());
    need(32); pos += 32; // the subject's log pseudonym: nobody's symbol, nothing to show
    rec.ext = [];
    while (version === 2 && pos < leaf.length) {
      const tag = u8(); need(4); const n = view.getUint32(pos); pos += 4; need(n);
      rec.ext.push([tag, leaf.slice(pos, pos + n)]); pos += n;
    }
    if (pos !== leaf.length) throw new VerifyError("the leaf has trailing bytes");
    return rec;
  }

  const KINDS = { 1: "translate", 2: "resolve", 3: "issue", 4: "release", 5: "policy" };

  // The whole check for one record. proof: {leaf, leaf_index, checkpoint, hashes} as the
  // portal sends it (base64); shown: what the page shows for the record.
  // witnesses: {vkeys: [...], quorum: k}; fewer than k valid cosignatures is a failure.
  async function verifyRecord(proof, vkeys, shown, witnesses = { vkeys: [], quorum: 0 }) {
    const note = proof.checkpoint;
    const checkpoint = parseCheckpoint(await verifyNoteByAny(note, vkeys));
    const cosigned = await countCosignatures(note, witnesses.vkeys);
    if (cosigned < witnesses.quorum) {
      const err = new VerifyError(
        `the checkpoint carries ${cosigned} of the ${witnesses.quorum} witness cosignatures required`);
      err.unwitnessed = true;
      throw err;
    }
    const leaf = b64(proof.leaf);
    const index = BigInt(proof.leaf_index);
    const root = await rootFromInclusionProof(await leafHash(leaf), index, checkpoint.size,
                                              proof.hashes.map(b64));
    if (!equal(root, checkpoint.root)) {
      throw new VerifyError("the inclusion proof does not lead to the signed root");
    }
    const rec = decodeLeaf(leaf);
    if (shown && (KINDS[rec.kind] !== shown.kind || rec.timeUs !== BigInt(shown.timeUs) ||
        rec.requester !== shown.requester || rec.officeWork !== shown.officeWork ||
        rec.infoItem !== shown.infoItem || rec.providers.join(" ") !== shown.providers)) {
      throw new VerifyError("the logged record differs from the record shown");
    }
    return { index: index + 1n, size: checkpoint.size, origin: checkpoint.origin, record: rec,
             cosigned };
  }

  global.SymbolsvcVerify = {
    VerifyError, b64, sha256, leafHash, nodeHash, rootFromInclusionProof, parseVkey,
    verifyNote, verifyNoteByAny, countCosignatures, parseCheckpoint, decodeLeaf, verifyRecord,
  };
})(globalThis);
