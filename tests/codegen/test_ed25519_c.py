"""The bundle runner's Ed25519 verifier (codegen/deploy/templates/ed25519.h.j2, issue 25):
compiled natively with a small driver, it agrees with RFC 8032's test vectors, with
hashlib's SHA-512, and with `cryptography` (OpenSSL) on 200 random keys and messages and
on every one-bit change of message, signature or key; s >= L and non-canonical point
encodings are refused.
"""
from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import pytest

HEADER = Path(__file__).resolve().parents[2] / "vcompile/codegen/deploy/templates/ed25519.h.j2"
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493

# RFC 8032 section 7.1: TEST 1, 2, 3, 1024 and SHA(abc): (secret, public key, message, signature).
_LONG = (
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1"
    "e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d"
    "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a"
    "7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e"
    "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc10"
    "3b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1"
    "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d"
    "502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270"
    "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089b"
    "eccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba"
    "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b"
    "e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7"
    "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d"
    "cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df"
    "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7"
    "984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4"
    "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac09"
    "43bf6686b64b2579376504ccc493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f"
    "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f161"
    "0e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d"
    "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8ca"
    "c60c905c15fc910840b94c00a0b9d0")
RFC8032 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46b"
     "d25bf5f0595bbe24655141438e7a100b"),
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c"
     "387b2eaeb4302aeeb00d291612bb0c00"),
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc659"
     "4a7c15e9716ed28dc027beceea1ec40a"),
    ("f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
     "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e", _LONG,
     "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528ecea23c436d94b"
     "5e8fcd4f681e30a6ac00a9704a188a03"),
    ("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd"
     "454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e030"
     "3dca179c138ac17ad9bef1177331a704"),
]

# Reads lines "sha512 MSG" or "verify PUB SIG MSG" (hex; "-" for no bytes), answers one line each.
DRIVER = r"""
#include "ed25519.h.j2"
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

static std::vector<uint8_t> unhex(const std::string& s) {
  std::vector<uint8_t> out;
  if (s == "-") return out;
  for (size_t i = 0; i + 1 < s.size(); i += 2) out.push_back((uint8_t)std::stoi(s.substr(i, 2), nullptr, 16));
  return out;
}

int main() {
  std::string op, a, b, c;
  while (std::cin >> op) {
    if (op == "sha512") {
      std::cin >> a;
      std::vector<uint8_t> m = unhex(a);
      uint8_t h[64];
      sha512_ctx ctx;
      sha512_init(&ctx);
      for (size_t i = 0; i < m.size(); i += 37)  // fed in uneven pieces
        sha512_update(&ctx, m.data() + i, m.size() - i < 37 ? m.size() - i : 37);
      sha512_final(&ctx, h);
      for (uint8_t x : h) std::printf("%02x", x);
      std::printf("\n");
    } else {
      std::cin >> a >> b >> c;
      std::vector<uint8_t> pub = unhex(a), sig = unhex(b), msg = unhex(c);
      std::printf("%d\n", ed25519_verify(sig.data(), msg.data(), msg.size(), pub.data()));
    }
  }
}
"""


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("g++") is None:
        pytest.skip("no g++")
    d = tmp_path_factory.mktemp("ed25519")
    (d / "driver.cc").write_text(DRIVER)
    exe = d / "driver"
    r = subprocess.run(["g++", "-std=c++17", "-O2", "-Wall", "-Wextra", "-Wconversion", "-I",
                        str(HEADER.parent), "-o", str(exe), str(d / "driver.cc")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ed25519.h.j2" not in r.stderr, r.stderr  # no warning in the header
    return exe


def ask(driver: Path, lines: list[str]) -> list[str]:
    r = subprocess.run([str(driver)], input="\n".join(lines) + "\n", capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert len(out) == len(lines)
    return out


def verify_line(pub: bytes, sig: bytes, msg: bytes) -> str:
    return f"verify {pub.hex()} {sig.hex()} {msg.hex() or '-'}"


def openssl_accepts(pub: bytes, sig: bytes, msg: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
    except (InvalidSignature, ValueError):
        return False
    return True


# A reference in Python big integers, only to build the edge cases below (affine points).
D = -121665 * pow(121666, P - 2, P) % P


def _add(p: tuple[int, int], q: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = p, q
    t = D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P,
            (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P)


def _mul(n: int, p: tuple[int, int]) -> tuple[int, int]:
    r = (0, 1)
    while n:
        if n & 1:
            r = _add(r, p)
        p, n = _add(p, p), n >> 1
    return r


def _encode(p: tuple[int, int]) -> bytes:
    return (p[1] | (p[0] & 1) << 255).to_bytes(32, "little")


def _x(y: int, sign: int) -> int:
    xx = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(xx, (P + 3) // 8, P)
    if x * x % P != xx:
        x = x * pow(2, (P - 1) // 4, P) % P
    assert x * x % P == xx
    return P - x if x & 1 != sign else x


B = (_x(4 * pow(5, P - 2, P) % P, 0), 4 * pow(5, P - 2, P) % P)


def _k(r: bytes, a: bytes, msg: bytes) -> int:
    return int.from_bytes(hashlib.sha512(r + a + msg).digest(), "little") % L


def test_sha512_matches_hashlib(driver: Path) -> None:
    rng = random.Random(5)
    msgs = [b"", b"abc", *(bytes(rng.getrandbits(8) for _ in range(n))
                           for n in (1, 111, 112, 113, 127, 128, 129, 239, 240, 255, 256, 1000, 4096))]
    got = ask(driver, [f"sha512 {m.hex() or '-'}" for m in msgs])
    assert got == [hashlib.sha512(m).hexdigest() for m in msgs]


def test_rfc8032_vectors(driver: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    lines = []
    for secret, pub, msg, sig in RFC8032:
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(secret))  # the vectors are RFC 8032's
        assert key.public_key().public_bytes_raw().hex() == pub
        assert key.sign(bytes.fromhex(msg)).hex() == sig
        lines.append(verify_line(bytes.fromhex(pub), bytes.fromhex(sig), bytes.fromhex(msg)))
        lines.append(verify_line(bytes.fromhex(pub), bytes.fromhex(sig), bytes.fromhex(msg) + b"\0"))
    assert ask(driver, lines) == ["1", "0"] * len(RFC8032)


def test_random_keys_and_one_bit_changes_agree_with_cryptography(driver: Path) -> None:
    """200 keys and messages: valid signatures accepted; a flipped bit in the message, the
    signature or the key refused; the verdicts are OpenSSL's, case by case."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    rng = random.Random(25)
    cases = []
    for _ in range(200):
        key = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        pub = key.public_key().public_bytes_raw()
        msg = rng.randbytes(rng.choice([0, 1, 31, 64, 100, 127, 128, 129, 1000]))
        sig = key.sign(msg)
        cases.append((pub, sig, msg))
        if msg:
            changed = bytearray(msg)
            bit = rng.randrange(len(msg) * 8)
            changed[bit // 8] ^= 1 << bit % 8
            cases.append((pub, sig, bytes(changed)))
        for which in (0, 1):  # the signature, then the key
            data = bytearray(sig if which == 0 else pub)
            bit = rng.randrange(len(data) * 8)
            data[bit // 8] ^= 1 << bit % 8
            cases.append((pub, bytes(data), msg) if which == 0 else (bytes(data), sig, msg))
    got = ask(driver, [verify_line(*c) for c in cases])
    want = ["1" if openssl_accepts(*c) else "0" for c in cases]
    assert got == want
    assert got.count("1") == 200  # exactly the unaltered ones


def test_s_at_or_above_l_is_refused(driver: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    pub, msg = key.public_key().public_bytes_raw(), b"vcompile"
    sig = key.sign(msg)
    s = int.from_bytes(sig[32:], "little")
    cases = [(pub, sig[:32] + (s + L).to_bytes(32, "little"), msg),  # the same s mod L
             (pub, sig[:32] + L.to_bytes(32, "little"), msg),
             (pub, sig[:32] + (2**256 - 1).to_bytes(32, "little"), msg)]
    assert [openssl_accepts(*c) for c in cases] == [False] * 3
    got = ask(driver, [verify_line(pub, sig, msg), *(verify_line(*c) for c in cases)])
    assert got == ["1", "0", "0", "0"]


def test_non_canonical_encodings_are_refused(driver: Path) -> None:
    """Signatures that hold for the point a non-canonical encoding (y >= p, or x = 0 with the
    sign bit set) would decode to, were it read leniently, are refused; the same ones
    canonically encoded are accepted."""
    msg = b"model.so"
    ident_canon = (1).to_bytes(32, "little")
    ident_big = (P + 1).to_bytes(32, "little")       # y = p + 1: the identity, non-canonical
    ident_signed = (1 | 1 << 255).to_bytes(32, "little")  # x = 0 with the sign bit
    r = 1234567
    big_r = _encode(_mul(r, B))
    cases = []
    for a, ok in [(ident_canon, "1"), (ident_big, "0"), (ident_signed, "0")]:
        # with A the identity, [k]A vanishes: s = r makes [s]B = R + [k]A
        cases.append((a, big_r + r.to_bytes(32, "little"), msg, ok))
    a_scalar = 987654321
    pub = _encode(_mul(a_scalar, B))
    for rr, ok in [(ident_canon, "1"), (ident_big, "0"), (ident_signed, "0")]:
        # R = the identity: s = k a, with k hashed over R's bytes as given
        s = _k(rr, pub, msg) * a_scalar % L
        cases.append((pub, rr + s.to_bytes(32, "little"), msg, ok))
    # y = p + 0 .. p + 18: every non-canonical y (each a point or not) as the key
    for extra in range(19):
        cases.append(((P + extra).to_bytes(32, "little"), big_r + r.to_bytes(32, "little"), msg, "0"))
    assert ask(driver, [verify_line(a, sig, m) for a, sig, m, _ in cases]) == [ok for *_, ok in cases]
    # OpenSSL agrees on the canonical ones and on a non-canonical R
    assert openssl_accepts(*cases[0][:3]) and openssl_accepts(*cases[3][:3])
    assert not openssl_accepts(*cases[4][:3])


def test_header_compiles_as_c(tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    (tmp_path / "c.c").write_text('#include "ed25519.h.j2"\nint main(void) { uint8_t z[64] = {0};\n'
                                  "  return ed25519_verify(z, z, 0, z); }\n")
    r = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Wno-pedantic", "-I",
                        str(HEADER.parent), "-o", str(tmp_path / "c"), str(tmp_path / "c.c")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    assert subprocess.run([str(tmp_path / "c")], timeout=60).returncode == 0  # all zeros: refused
