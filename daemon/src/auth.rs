//! Staff authentication: users with argon2id password hashes, bearer session tokens, login
//! throttling, and the first-run admin account.
//!
//! A session token is 256 random bits shown to the client once; the store keeps only its
//! SHA-256, so a copy of the database does not hold usable tokens. Looking a token up by its
//! hash needs no secret comparison. Sessions are mirrored in memory for speed and written
//! through the writer, so they survive a restart.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use argon2::Argon2;
use argon2::password_hash::PasswordHash;
use rand::rngs::OsRng;
use redb::{ReadTransaction, ReadableDatabase as _, ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::is_slug;
use crate::domain::random_hex;
use crate::error::TxResult;
use crate::error::{AppError, ErrorKind};
use crate::store::writer::Tx;
use crate::store::{Store, StoreError, Stored, codec, tables as t};

/// What a staff member may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything: menu, tables, reports, users.
    Admin,
    /// Orders, availability and stock.
    Staff,
}

impl Role {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Staff => "staff",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "staff" => Some(Self::Staff),
            _ => None,
        }
    }
}

/// A staff account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Created, ms.
    pub created_at: u64,
}

impl Stored for User {
    const WHAT: &'static str = "user";
}

/// A signed-in session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// Who.
    pub username: String,
    /// With which role.
    pub role: Role,
    /// Created, ms.
    pub created_at: u64,
    /// Expires, ms.
    pub expires_at: u64,
}

impl Stored for Session {
    const WHAT: &'static str = "session";
}

/// SHA-256 of a token, the session key.
pub fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// argon2id at 7 MiB and 5 passes: one of OWASP's equivalent minimum settings (19 MiB × 2,
/// 12 MiB × 3, 9 MiB × 4, 7 MiB × 5 passes, one lane), the one that suits a box whose whole
/// memory budget under load is 64 MB: the working memory is resident while a hash runs (below).
/// A hash keeps its own parameters, so one made with other settings is still checked with them.
fn params() -> argon2::Params {
    argon2::Params::new(7 * 1024, 5, 1, None).unwrap_or(argon2::Params::DEFAULT)
}

/// The argon2 working memory of one hash or check, given back to the kernel as soon as it is
/// done. glibc serves an allocation from its heaps, where a freed 7 MiB block stays resident,
/// unless the allocation is above its mmap threshold; the threshold rises to the size of each
/// mapped block freed, up to 32 MiB. So the block is reserved a little above 32 MiB: it is always
/// a mapping of its own, only the 7 MiB argon2 writes become resident, and the unmapping on drop
/// returns them, whichever thread ran it. One hash at a time (sign-ins and device logins are
/// rare), so the box never holds two.
fn with_argon_memory<T>(blocks: usize, f: impl FnOnce(&mut [argon2::Block]) -> T) -> T {
    const RESERVE: usize = 33 * 1024 * 1024 / std::mem::size_of::<argon2::Block>();
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut mem = Vec::with_capacity(blocks.max(RESERVE));
    mem.resize(blocks, argon2::Block::default());
    f(&mut mem)
}

fn argon2id_raw(params: &argon2::Params, password: &[u8], salt: &[u8], out: &mut [u8]) -> bool {
    let a = Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params.clone(),
    );
    with_argon_memory(params.block_count(), |mem| {
        a.hash_password_into_with_memory(password, salt, out, mem)
            .is_ok()
    })
}

/// Hashes a password with argon2id ([`params`]: 7 MiB, 5 passes) into a PHC string.
pub fn hash_password(password: &str) -> Result<String, AppError> {
    use base64::Engine as _;
    use rand::RngCore as _;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let params = params();
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let mut out = [0u8; 32];
    if !argon2id_raw(&params, password.as_bytes(), &salt, &mut out) {
        return Err(AppError::invalid("password", "cannot be hashed"));
    }
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        b64.encode(salt),
        b64.encode(out)
    ))
}

/// Checks a password against an argon2id PHC hash, comparing in constant time.
pub fn verify_password(hash: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    if parsed.algorithm.as_str() != "argon2id" {
        return false;
    }
    let (Ok(params), Some(salt), Some(expected)) =
        (argon2::Params::try_from(&parsed), parsed.salt, parsed.hash)
    else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    argon2id_raw(&params, password.as_bytes(), salt, &mut out)
        && bool::from(subtle::ConstantTimeEq::ct_eq(out.as_slice(), expected))
}

/// A hash to verify against when the user does not exist, so timing does not reveal it.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not-a-real-password").unwrap_or_default())
}

/// Checks a new username and password.
pub fn check_credentials(username: &str, password: &str) -> Result<(), AppError> {
    if !is_slug(username, 32) {
        return Err(AppError::invalid(
            "username",
            "1-32 characters of a-z, 0-9, _ or -",
        ));
    }
    if password.chars().count() < 8 || password.len() > 256 {
        return Err(AppError::invalid("password", "8 to 256 characters"));
    }
    Ok(())
}

/// Checks a manager PIN: 4 to 8 digits.
pub fn check_pin(pin: &str) -> Result<(), AppError> {
    if !(4..=8).contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AppError::invalid("pin", "4 to 8 digits"));
    }
    Ok(())
}

/// Stores an admin's approval PIN (its argon2id hash, made by the caller off the writer).
pub fn set_pin(tx: &mut Tx<'_>, username: &str, hash: &str) -> TxResult<()> {
    let user: User = match tx.users.get(username)? {
        Some(v) => codec::decode(v.value())?,
        None => return Err(AppError::not_found("user").into()),
    };
    if user.role != Role::Admin {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "not_a_manager",
            "only an admin approves discounts, voids and refunds; give the PIN to an admin",
        )
        .into());
    }
    tx.pins.insert(username, hash)?;
    Ok(())
}

/// An admin's approval PIN hash, if one is set.
pub fn get_pin(rtx: &ReadTransaction, username: &str) -> Result<Option<String>, StoreError> {
    let t = rtx.open_table(t::PINS)?;
    Ok(t.get(username)?.map(|v| v.value().to_owned()))
}

/// Adds a user (409 if the name is taken).
pub fn add_user(
    tx: &mut Tx<'_>,
    username: &str,
    role: Role,
    password_hash: String,
) -> TxResult<User> {
    if tx.users.get(username)?.is_some() {
        return Err(AppError::new(
            ErrorKind::Conflict,
            "user_exists",
            format!("user {username:?} exists; use `orderd user passwd`"),
        )
        .into());
    }
    let user = User {
        username: username.to_owned(),
        role,
        password_hash,
        created_at: tx.now_ms(),
    };
    tx.users
        .insert(username, codec::encode(&user)?.as_slice())?;
    Ok(user)
}

/// Removes the sessions that have expired (a handful); how many.
pub fn expire_sessions(tx: &mut Tx<'_>) -> TxResult<u64> {
    let now = tx.now_ms();
    let mut expired = Vec::new();
    for row in tx.sessions.iter()? {
        let (k, v) = row?;
        let s: Session = codec::decode(v.value())?;
        if s.expires_at <= now {
            expired.push(k.value());
        }
    }
    for k in &expired {
        tx.sessions.remove(k)?;
    }
    Ok(expired.len() as u64)
}

/// Sets a user's password and ends all their sessions. Returns the revoked session keys.
pub fn set_password(
    tx: &mut Tx<'_>,
    username: &str,
    password_hash: String,
) -> TxResult<Vec<[u8; 32]>> {
    let mut user: User = match tx.users.get(username)? {
        Some(v) => codec::decode(v.value())?,
        None => return Err(AppError::not_found("user").into()),
    };
    let mut revoked = Vec::new();
    for row in tx.sessions.iter()? {
        let (k, v) = row?;
        let s: Session = codec::decode(v.value())?;
        if s.username == username {
            revoked.push(k.value());
        }
    }
    user.password_hash = password_hash;
    tx.users
        .insert(username, codec::encode(&user)?.as_slice())?;
    for k in &revoked {
        tx.sessions.remove(k)?;
    }
    Ok(revoked)
}

/// Reads a user.
pub fn get_user(rtx: &ReadTransaction, username: &str) -> Result<Option<User>, StoreError> {
    let users = rtx.open_table(t::USERS)?;
    Ok(match users.get(username)? {
        Some(v) => Some(codec::decode(v.value())?),
        None => None,
    })
}

/// Every user, by name.
pub fn list_users(rtx: &ReadTransaction) -> Result<Vec<User>, StoreError> {
    let users = rtx.open_table(t::USERS)?;
    let mut out = Vec::new();
    for row in users.iter()? {
        out.push(codec::decode(row?.1.value())?);
    }
    Ok(out)
}

/// Live sessions, mirrored from the store.
#[derive(Default)]
pub struct Sessions {
    map: RwLock<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// Loads the unexpired sessions from the store.
    pub fn load(rtx: &ReadTransaction, now_ms: u64) -> Result<Self, StoreError> {
        let table = rtx.open_table(t::SESSIONS)?;
        let mut map = HashMap::new();
        for row in table.iter()? {
            let (k, v) = row?;
            let s: Session = codec::decode(v.value())?;
            if s.expires_at > now_ms {
                map.insert(k.value(), s);
            }
        }
        Ok(Self {
            map: RwLock::new(map),
        })
    }

    /// The session of a token, if it exists and has not expired.
    pub fn check(&self, token: &str, now_ms: u64) -> Option<Session> {
        let key = token_key(token);
        let map = self
            .map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&key).filter(|s| s.expires_at > now_ms).cloned()
    }

    /// Adds a session (after its commit).
    pub fn insert(&self, key: [u8; 32], session: Session) {
        self.map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, session);
    }

    /// Removes sessions (after their commit).
    pub fn remove(&self, keys: &[[u8; 32]]) {
        let mut map = self
            .map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for k in keys {
            map.remove(k);
        }
    }
}

/// Counts uses per key (code requests and checks per client address) within a window.
pub struct Throttle {
    max_uses: u32,
    window_ms: u64,
    state: Mutex<HashMap<String, (u32, u64)>>,
}

impl Throttle {
    /// A throttle allowing `max_uses` uses per `window_ms`.
    pub fn new(max_uses: u32, window_ms: u64) -> Self {
        Self {
            max_uses,
            window_ms,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one use of `key` and says how many seconds to wait when it is over the limit, in
    /// one step under the lock, so requests arriving all at once cannot slip past the count.
    pub fn take(&self, key: &str, now_ms: u64) -> Result<(), u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.len() > 100_000 {
            // Bound memory under a spray of keys: forget stale entries.
            let window = self.window_ms;
            state.retain(|_, (_, since)| *since + window > now_ms);
        }
        let e = state.entry(key.to_owned()).or_insert((0, now_ms));
        if e.1 + self.window_ms <= now_ms {
            *e = (0, now_ms);
        }
        if e.0 >= self.max_uses {
            return Err((e.1 + self.window_ms - now_ms).div_ceil(1000).max(1));
        }
        e.0 += 1;
        Ok(())
    }
}

/// File name of the first-run admin password inside the data directory.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// On a store without users, creates `admin` with a random password written to
/// `<data_dir>/initial-admin-password` (mode 0600). Returns the file's path when it did.
///
/// Runs before the writer starts, with its own transaction.
pub fn ensure_admin(
    store: &Store,
    data_dir: &Path,
    now_ms: u64,
) -> anyhow::Result<Option<PathBuf>> {
    use anyhow::Context as _;
    let db = store.db();
    {
        let rtx = db.begin_read()?;
        let users = rtx.open_table(t::USERS)?;
        if !users.is_empty()? {
            return Ok(None);
        }
    }
    let password = random_hex(12);
    let hash = hash_password(&password).map_err(|e| anyhow::anyhow!(e.message))?;
    let path = data_dir.join(INITIAL_PASSWORD_FILE);
    write_secret_file(&path, &format!("{password}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    let user = User {
        username: "admin".into(),
        role: Role::Admin,
        password_hash: hash,
        created_at: now_ms,
    };
    let wtx = db.begin_write()?;
    {
        let mut users = wtx.open_table(t::USERS)?;
        users.insert("admin", codec::encode(&user)?.as_slice())?;
    }
    wtx.commit()?;
    Ok(Some(path))
}

/// Writes a file readable only by its owner.
pub fn write_secret_file(path: &Path, content: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_standard_phc_both_ways() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, SaltString};
        // Ours verifies with the reference verifier …
        let ours = hash_password("correct horse").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        // … and the reference hasher's output verifies with ours.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password(&theirs, "battery staple"));
        assert!(!verify_password(&theirs, "battery stapler"));
        // Other algorithms are refused.
        assert!(!verify_password(
            "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            "x"
        ));
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{h}");
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "wrong horse"));
        assert!(!verify_password("garbage", "x"));
    }

    #[test]
    fn throttle_counts_then_forgives() {
        let t = Throttle::new(3, 10_000);
        for _ in 0..3 {
            assert!(t.take("u", 0).is_ok());
        }
        assert_eq!(t.take("u", 1000), Err(9));
        assert!(t.take("v", 1000).is_ok(), "keys are apart");
        assert!(t.take("u", 10_001).is_ok(), "a new window");
    }
}
