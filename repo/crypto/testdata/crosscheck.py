# Independent check of testdata/vectors.json with the Python "cryptography"
# package (>= 44): python3 repo/crypto/testdata/crosscheck.py
import json, hmac, hashlib
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives import serialization as ser
import os
v=json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'vectors.json')))
H=bytes.fromhex
def hkdf(ikm, info, n=32, salt=None):
    return HKDF(hashes.SHA256(), n, salt, info.encode()).derive(ikm)
def siv(key, pt):
    k=hkdf(key,"costor siv v1",64); enc,mac=k[:32],k[32:]
    nonce=hmac.new(mac,pt,hashlib.sha256).digest()[:12]
    return nonce+AESGCM(enc).encrypt(nonce,pt,None)
for e in v['seal_deterministic']:
    assert siv(H(e['key']),H(e['plaintext']))==H(e['sealed']), 'siv'
for e in v['chunk_key']:
    assert hmac.new(hkdf(H(e['org_secret']),"costor chunk key v1"),H(e['plaintext']),hashlib.sha256).digest()==H(e['key'])
for e in v['host_data_key']:
    assert hkdf(H(e['host_private']),"costor host data key v1")==H(e['data_key'])
raw=lambda pub: pub.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
for e in v['password_wrap']:
    w=H(e['wrapped']); p=e['params']; r=H(e['random'])
    hdr=bytes([1])+p['time'].to_bytes(4,'big')+p['memory'].to_bytes(4,'big')+bytes([p['threads']])+r[:16]
    key=Argon2id(salt=r[:16],length=32,iterations=p['time'],lanes=p['threads'],memory_cost=p['memory']).derive(e['password'].encode())
    nonce=r[16:28]
    assert w==hdr+nonce+AESGCM(key).encrypt(nonce,H(e['plaintext']),hdr), 'pw'
for e in v['envelope']:
    r=H(e['random']); fk=r[:32]; pos=32
    privs=[X25519PrivateKey.from_private_bytes(H(p)) for p in e['recipient_privates']]
    hdr=bytes([1,len(privs)])
    for pr in privs:
        rp=raw(pr.public_key()); eph=X25519PrivateKey.from_private_bytes(r[pos:pos+32]); pos+=32
        ep=raw(eph.public_key()); ss=eph.exchange(X25519PublicKey.from_public_bytes(rp))
        wk=hkdf(ss,"costor envelope v1",32,ep+rp)
        hdr+=rp+ep+AESGCM(wk).encrypt(bytes(12),fk,None)
    nonce=r[pos:pos+12]
    assert H(e['sealed'])==hdr+nonce+AESGCM(fk).encrypt(nonce,H(e['plaintext']),hdr), 'env'
print("all vectors match the independent Python implementation")
