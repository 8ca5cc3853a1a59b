import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { p256 } from "@noble/curves/nist.js";
import { isTeleportError } from "../../src/errors.js";
import {
  confirmationMatches,
  ownConfirmation,
  passwordScalar,
  SPAKE2_M,
  SPAKE2_N,
  type Spake2Context,
  spake2Finish,
  spake2Start,
} from "../../src/rendezvous/spake2.js";

/** RFC 9382 Appendix B, SPAKE2-P256-SHA256-HKDF-HMAC, typed in from the RFC (hex as printed there). */
interface RfcVector {
  A: string;
  B: string;
  w: string;
  x: string;
  pA: string;
  y: string;
  pB: string;
  K?: string;
  TT?: string;
  Ke: string;
  Ka: string;
  KcA: string;
  KcB: string;
  confA: string;
  confB: string;
}

const VECTORS: RfcVector[] = [
  {
    A: "server",
    B: "client",
    w: "2ee57912099d31560b3a44b1184b9b4866e904c49d12ac5042c97dca461b1a5f",
    x: "43dd0fd7215bdcb482879fca3220c6a968e66d70b1356cac18bb26c84a78d729",
    pA: "04a56fa807caaa53a4d28dbb9853b9815c61a411118a6fe516a8798434751470f9010153ac33d0d5f2047ffdb1a3e42c9b4e6be662766e1eeb4116988ede5f912c",
    y: "dcb60106f276b02606d8ef0a328c02e4b629f84f89786af5befb0bc75b6e66be",
    pB: "0406557e482bd03097ad0cbaa5df82115460d951e3451962f1eaf4367a420676d09857ccbc522686c83d1852abfa8ed6e4a1155cf8f1543ceca528afb591a1e0b7",
    K: "0412af7e89717850671913e6b469ace67bd90a4df8ce45c2af19010175e37eed69f75897996d539356e2fa6a406d528501f907e04d97515fbe83db277b715d3325",
    TT: "06000000000000007365727665720600000000000000636c69656e74410000000000000004a56fa807caaa53a4d28dbb9853b9815c61a411118a6fe516a8798434751470f9010153ac33d0d5f2047ffdb1a3e42c9b4e6be662766e1eeb4116988ede5f912c41000000000000000406557e482bd03097ad0cbaa5df82115460d951e3451962f1eaf4367a420676d09857ccbc522686c83d1852abfa8ed6e4a1155cf8f1543ceca528afb591a1e0b741000000000000000412af7e89717850671913e6b469ace67bd90a4df8ce45c2af19010175e37eed69f75897996d539356e2fa6a406d528501f907e04d97515fbe83db277b715d332520000000000000002ee57912099d31560b3a44b1184b9b4866e904c49d12ac5042c97dca461b1a5f",
    Ke: "0e0672dc86f8e45565d338b0540abe69",
    Ka: "15bdf72e2b35b5c9e5663168e960a91b",
    KcA: "00c12546835755c86d8c0db7851ae86f",
    KcB: "a9fa3406c3b781b93d804485430ca27a",
    confA: "58ad4aa88e0b60d5061eb6b5dd93e80d9c4f00d127c65b3b35b1b5281fee38f0",
    confB: "d3e2e547f1ae04f2dbdbf0fc4b79f8ecff2dff314b5d32fe9fcef2fb26dc459b",
  },
  {
    A: "",
    B: "client",
    w: "0548d8729f730589e579b0475a582c1608138ddf7054b73b5381c7e883e2efae",
    x: "403abbe3b1b4b9ba17e3032849759d723939a27a27b9d921c500edde18ed654b",
    pA: "04a897b769e681c62ac1c2357319a3d363f610839c4477720d24cbe32f5fd85f44fb92ba966578c1b712be6962498834078262caa5b441ecfa9d4a9485720e918a",
    y: "903023b6598908936ea7c929bd761af6039577a9c3f9581064187c3049d87065",
    pB: "04e0f816fd1c35e22065d5556215c097e799390d16661c386e0ecc84593974a61b881a8c82327687d0501862970c64565560cb5671f696048050ca66ca5f8cc7fc",
    K: "048f83ec9f6e4f87cc6f9dc740bdc2769725f923364f01c84148c049a39a735ebda82eac03e00112fd6a5710682767cff5361f7e819e53d8d3c3a2922e0d837aa6",
    Ke: "642f05c473c2cd79909f9a841e2f30a7",
    Ka: "0bf89b18180af97353ba198789c2b963",
    KcA: "c6be376fc7cd1301fd0a13adf3e7bffd",
    KcB: "b7243f4ae60440a49b3f8cab3c1fba07",
    confA: "47d29e6666af1b7dd450d571233085d7a9866e4d49d2645e2df975489521232b",
    confB: "3313c5cefc361d27fb16847a91c2a73b766ffa90a4839122a9b70a2f6bd1d6df",
  },
  {
    A: "server",
    B: "",
    w: "626e0cdc7b14c9db3e52a0b1b3a768c98e37852d5db30febe0497b14eae8c254",
    x: "07adb3db6bc623d3399726bfdbfd3d15a58ea776ab8a308b00392621291f9633",
    pA: "04f88fb71c99bfffaea370966b7eb99cd4be0ff1a7d335caac4211c4afd855e2e15a873b298503ad8ba1d9cbb9a392d2ba309b48bfd7879aefd0f2cea6009763b0",
    y: "b6a4fc8dbb629d4ba51d6f91ed1532cf87adec98f25dd153a75accafafedec16",
    pB: "040c269d6be017dccb15182ac6bfcd9e2a14de019dd587eaf4bdfd353f031101e7cca177f8eb362a6e83e7d5e729c0732e1b528879c086f39ba0f31a9661bd34db",
    Ke: "005184ff460da2ce59062c87733c299c",
    Ka: "3521297d736598fc0a1127600efa1afb",
    KcA: "f3da53604f0aeecea5a33be7bddf6edf",
    KcB: "9e3f86848736f159bd92b6e107ec6799",
    confA: "bc9f9bbe99f26d0b2260e6456e05a86196a3307ec6663a18bf6ac825736533b2",
    confB: "c2370e1bf813b086dff0d834e74425a06e6390f48f5411900276dcccc5a297ec",
  },
  {
    A: "",
    B: "",
    w: "7bf46c454b4c1b25799527d896508afd5fc62ef4ec59db1efb49113063d70cca",
    x: "8cef65df64bb2d0f83540c53632de911b5b24b3eab6cc74a97609fd659e95473",
    pA: "04a65b367a3f613cf9f0654b1b28a1e3a8a40387956c8ba6063e8658563890f46ca1ef6a676598889fc28de2950ab8120b79a5ef1ea4c9f44bc98f585634b46d66",
    y: "d7a66f64074a84652d8d623a92e20c9675c61cb5b4f6a0063e4648a2fdc02d53",
    pB: "04589f13218822710d98d8b2123a079041052d9941b9cf88c6617ddb2fcc0494662eea8ba6b64692dc318250030c6af045cb738bc81ba35b043c3dcb46adf6f58d",
    Ke: "fc6374762ba5cf11f4b2caa08b2cd1b9",
    Ka: "907ae0e26e8d6234318d91583cd74c86",
    KcA: "5dbd2f477166b7fb6d61febbd77a5563",
    KcB: "7689b4654407a5faeffdc8f18359d8a3",
    confA: "dfb4db8d48ae5a675963ea5e6c19d98d4ea028d8e898dad96ea19a80ade95dca",
    confB: "d0f0609d1613138d354f7e95f19fb556bf52d751947241e8c7118df5ef0ae175",
  },
];

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const scalar = (text: string) => BigInt(`0x${text}`);

/** The RFC's vectors use empty additional data. */
function contextOf(vector: RfcVector): Spake2Context {
  return { idA: Buffer.from(vector.A), idB: Buffer.from(vector.B), aad: Buffer.alloc(0) };
}

describe("SPAKE2 (RFC 9382, P-256)", () => {
  it("has the RFC's M and N", () => {
    assert.equal(SPAKE2_M, "02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f");
    assert.equal(SPAKE2_N, "03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49");
  });

  for (const vector of VECTORS) {
    it(`matches the RFC's vector A='${vector.A}', B='${vector.B}': shares, K, keys and confirmations`, () => {
      const a = spake2Start("A", scalar(vector.w), scalar(vector.x));
      const b = spake2Start("B", scalar(vector.w), scalar(vector.y));
      assert.equal(hex(a.share), vector.pA);
      assert.equal(hex(b.share), vector.pB);
      const context = contextOf(vector);
      const keysA = spake2Finish(a, b.share, context);
      const keysB = spake2Finish(b, a.share, context);
      for (const keys of [keysA, keysB]) {
        if (vector.TT !== undefined) assert.equal(hex(keys.transcript), vector.TT);
        if (vector.K !== undefined) assert.ok(hex(keys.transcript).includes(`4100000000000000${vector.K}`));
        assert.equal(hex(keys.ke), vector.Ke);
        assert.equal(hex(keys.ka), vector.Ka);
        assert.equal(hex(keys.kcA), vector.KcA);
        assert.equal(hex(keys.kcB), vector.KcB);
        assert.equal(hex(keys.confirmationA), vector.confA);
        assert.equal(hex(keys.confirmationB), vector.confB);
      }
      assert.ok(confirmationMatches(keysA, "A", ownConfirmation(keysB, "B")));
      assert.ok(confirmationMatches(keysB, "B", ownConfirmation(keysA, "A")));
    });
  }

  it("agrees on a key with fresh scalars, and binds the additional data into the confirmations", () => {
    const context = { idA: Buffer.from("send"), idB: Buffer.from("receive"), aad: Buffer.from("7") };
    const w = passwordScalar(Buffer.from("7-crossover-clockwork"), Buffer.from("test"));
    const a = spake2Start("A", w);
    const b = spake2Start("B", w);
    const keysA = spake2Finish(a, b.share, context);
    const keysB = spake2Finish(b, a.share, context);
    assert.deepEqual(keysA.ke, keysB.ke);
    assert.ok(confirmationMatches(keysB, "B", keysA.confirmationA));
    const otherAad = spake2Finish(b, a.share, { ...context, aad: Buffer.from("8") });
    assert.deepEqual(otherAad.ke, keysA.ke);
    assert.ok(!confirmationMatches(otherAad, "B", keysA.confirmationA));
  });

  it("a wrong password gives different keys and confirmations that do not verify, on both sides", () => {
    const context = { idA: Buffer.from("send"), idB: Buffer.from("receive"), aad: Buffer.alloc(0) };
    const a = spake2Start("A", passwordScalar(Buffer.from("7-crossover-clockwork"), Buffer.alloc(0)));
    const b = spake2Start("B", passwordScalar(Buffer.from("7-crossover-clockworm"), Buffer.alloc(0)));
    const keysA = spake2Finish(a, b.share, context);
    const keysB = spake2Finish(b, a.share, context);
    assert.notDeepEqual(keysA.ke, keysB.ke);
    assert.ok(!confirmationMatches(keysA, "A", keysB.confirmationB));
    assert.ok(!confirmationMatches(keysB, "B", keysA.confirmationA));
    assert.ok(!confirmationMatches(keysB, "B", keysA.confirmationA.subarray(0, 16)));
  });

  it("refuses a share that is not an uncompressed point on the curve, or that makes K the identity", () => {
    const context = { idA: Buffer.alloc(0), idB: Buffer.alloc(0), aad: Buffer.alloc(0) };
    const w = passwordScalar(Buffer.from("pw"), Buffer.alloc(0));
    const a = spake2Start("A", w);
    const wN = p256.Point.fromHex(SPAKE2_N).multiply(w).toBytes(false);
    const hostile = [
      Buffer.alloc(0),
      Buffer.from([0]),
      Buffer.alloc(65),
      Buffer.from(`04${"ff".repeat(64)}`, "hex"),
      Buffer.from(SPAKE2_M, "hex"),
      Buffer.concat([a.share, Buffer.from([0])]),
      wN,
    ];
    for (const share of hostile) {
      assert.throws(
        () => spake2Finish(a, share, context),
        (err: unknown) => isTeleportError(err) && err.code === "TELEPORT_ERR_PROTOCOL",
        hex(share),
      );
    }
  });

  it("refuses scalars out of range", () => {
    assert.throws(() => spake2Start("A", 0n));
    assert.throws(() => spake2Start("A", 1n, 0n));
    assert.throws(() => spake2Start("B", p256.Point.CURVE().n, 1n));
  });
});
