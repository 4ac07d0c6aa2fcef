//! A SCRAM-SHA-256 client (RFC 5802 with the SHA-256 of RFC 7677) for MQTT 5 enhanced
//! authentication, authentication method [`METHOD`].
//!
//! Self-contained (std, `sha2`, `hmac`, `pbkdf2`; no `super::`), so that an example can
//! include it with `#[path = "../tests/support/scram.rs"] mod scram;`.
//!
//! ```ignore
//! let mut scram = ScramClient::new("alice", "secret");
//! // CONNECT with Authentication Method METHOD, Authentication Data:
//! let client_first = scram.client_first();
//! // AUTH 0x18 from the server carries the server-first-message; answer with AUTH 0x18:
//! let client_final = scram.client_final(server_first)?;
//! // CONNACK 0x00 (or AUTH 0x00 after a re-authentication) carries the server-final-message:
//! scram.verify_server_final(server_final)?;
//! ```
//!
//! No SASLprep: user names and passwords are used byte for byte (fine for ASCII). No
//! channel binding (gs2 header `n,,`) and no authorization identity.

use std::fmt;
use std::io::Read;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The MQTT Authentication Method name.
pub const METHOD: &str = "SCRAM-SHA-256";

/// The gs2 header sent: no channel binding, no authorization identity.
const GS2_HEADER: &str = "n,,";

/// The largest iteration count accepted from a server (a bound on the work a server can
/// make the client do).
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Why a server message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScramError {
    /// Not a message of the expected form.
    Malformed(String),
    /// The server's nonce does not start with ours (or adds nothing to it).
    NonceMismatch,
    /// An iteration count of 0 or above [`MAX_ITERATIONS`].
    IterationCount(u32),
    /// The server sent `e=<reason>` in its final message.
    Server(String),
    /// The server signature (`v=`) is wrong: the server does not know the password.
    BadServerSignature,
    /// A method called out of order (e.g. verifying before computing the client-final).
    OutOfOrder,
}

impl fmt::Display for ScramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScramError::Malformed(why) => write!(f, "malformed SCRAM message: {why}"),
            ScramError::NonceMismatch => write!(f, "server nonce does not extend ours"),
            ScramError::IterationCount(n) => write!(f, "iteration count {n} out of range"),
            ScramError::Server(e) => write!(f, "server error: {e}"),
            ScramError::BadServerSignature => write!(f, "server signature does not verify"),
            ScramError::OutOfOrder => write!(f, "SCRAM step out of order"),
        }
    }
}

impl std::error::Error for ScramError {}

/// The parsed server-first-message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFirst {
    /// Client nonce followed by the server's part.
    pub nonce: String,
    pub salt: Vec<u8>,
    pub iterations: u32,
}

/// Parses a server-first-message `r=<nonce>,s=<base64 salt>,i=<count>[,ext...]`.
pub fn parse_server_first(msg: &[u8]) -> Result<ServerFirst, ScramError> {
    let text = std::str::from_utf8(msg).map_err(|_| malformed("server-first is not UTF-8"))?;
    let mut attrs = text.split(',');
    let mut next = |name: &str| -> Result<&str, ScramError> {
        let attr = attrs.next().unwrap_or("");
        if attr.starts_with("m=") {
            return Err(malformed("mandatory extension"));
        }
        attr.strip_prefix(name)
            .ok_or_else(|| malformed(&format!("expected {name} in server-first {text:?}")))
    };
    let nonce = next("r=")?.to_string();
    let salt = base64_decode(next("s=")?).ok_or_else(|| malformed("salt is not base64"))?;
    let iterations: u32 = next("i=")?
        .parse()
        .map_err(|_| malformed("iteration count is not a number"))?;
    if salt.is_empty() {
        return Err(malformed("empty salt"));
    }
    if nonce.is_empty() || !nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(malformed("bad nonce"));
    }
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

enum State {
    /// client-first made (or not yet asked for), waiting for the server-first-message.
    Initial,
    /// client-final made; the server signature that the server-final must carry.
    AwaitingServerFinal { server_signature: [u8; 32] },
    /// The server signature verified.
    Done,
}

/// One SCRAM-SHA-256 exchange, client side. Make a new one for each (re-)authentication.
pub struct ScramClient {
    password: String,
    client_nonce: String,
    client_first_bare: String,
    state: State,
}

impl ScramClient {
    /// A client with a random nonce (24 base64 characters from 18 random bytes).
    pub fn new(user: &str, password: &str) -> ScramClient {
        ScramClient::with_nonce(user, password, &random_nonce())
    }

    /// A client with a given nonce (for test vectors). Panics if the nonce is empty or is
    /// not printable ASCII without ','.
    pub fn with_nonce(user: &str, password: &str, nonce: &str) -> ScramClient {
        assert!(
            !nonce.is_empty()
                && nonce
                    .bytes()
                    .all(|b| (0x21..=0x7e).contains(&b) && b != b','),
            "a SCRAM nonce is printable ASCII without ','"
        );
        ScramClient {
            password: password.to_string(),
            client_nonce: nonce.to_string(),
            client_first_bare: format!("n={},r={}", escape_saslname(user), nonce),
            state: State::Initial,
        }
    }

    /// The client-first-message: `n,,n=<user>,r=<nonce>`.
    pub fn client_first(&self) -> String {
        format!("{GS2_HEADER}{}", self.client_first_bare)
    }

    /// Handles the server-first-message and returns the client-final-message
    /// `c=biws,r=<nonce>,p=<base64 proof>`.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<String, ScramError> {
        if !matches!(self.state, State::Initial) {
            return Err(ScramError::OutOfOrder);
        }
        let sf = parse_server_first(server_first)?;
        if !sf.nonce.starts_with(&self.client_nonce) || sf.nonce.len() == self.client_nonce.len() {
            return Err(ScramError::NonceMismatch);
        }
        if sf.iterations == 0 || sf.iterations > MAX_ITERATIONS {
            return Err(ScramError::IterationCount(sf.iterations));
        }
        let server_first = std::str::from_utf8(server_first).expect("checked by the parser");

        let salted = salted_password(self.password.as_bytes(), &sf.salt, sf.iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let server_key = hmac_sha256(&salted, b"Server Key");

        let without_proof = format!("c={},r={}", base64_encode(GS2_HEADER.as_bytes()), sf.nonce);
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = hmac_sha256(&stored_key, auth_message.as_bytes());
        let mut proof = [0u8; 32];
        for (p, (k, s)) in proof
            .iter_mut()
            .zip(client_key.iter().zip(&client_signature))
        {
            *p = k ^ s;
        }
        self.state = State::AwaitingServerFinal {
            server_signature: hmac_sha256(&server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", base64_encode(&proof)))
    }

    /// Checks the server-final-message (`v=<base64 signature>`, or `e=<error>`): proves
    /// that the server knows the password.
    pub fn verify_server_final(&mut self, server_final: &[u8]) -> Result<(), ScramError> {
        let State::AwaitingServerFinal { server_signature } = &self.state else {
            return Err(ScramError::OutOfOrder);
        };
        let text =
            std::str::from_utf8(server_final).map_err(|_| malformed("server-final not UTF-8"))?;
        let first = text.split(',').next().unwrap_or("");
        if let Some(e) = first.strip_prefix("e=") {
            return Err(ScramError::Server(e.to_string()));
        }
        let v = first
            .strip_prefix("v=")
            .ok_or_else(|| malformed(&format!("expected v= in server-final {text:?}")))?;
        let got = base64_decode(v).ok_or_else(|| malformed("signature is not base64"))?;
        if !constant_time_eq(&got, server_signature) {
            return Err(ScramError::BadServerSignature);
        }
        self.state = State::Done;
        Ok(())
    }

    /// Whether the server signature has been verified.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

fn malformed(why: &str) -> ScramError {
    ScramError::Malformed(why.to_string())
}

/// SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations).
pub fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
    out
}

/// HMAC-SHA-256(key, data).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A user name as a saslname: `,` becomes `=2C` and `=` becomes `=3D`.
pub fn escape_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// 18 random bytes in base64 (from /dev/urandom; if that cannot be read, from the
/// randomly keyed hashers of std).
pub fn random_nonce() -> String {
    let mut raw = [0u8; 18];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut raw));
    if read.is_err() {
        use std::hash::{BuildHasher, Hasher};
        for (i, chunk) in raw.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            let v = h.finish().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    base64_encode(&raw)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Strict standard base64 with padding; `None` if malformed.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let value = |c: u8| B64.iter().position(|&x| x == c).map(|v| v as u32);
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, quad) in bytes.chunks(4).enumerate() {
        let last = i == bytes.len() / 4 - 1;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}
