//! The stored-value encoding: one version byte, then the value in postcard.
//!
//! Every value written to a table carries the format version it was written with. Reading a
//! value of an older version goes through [`Stored::migrate`], the migration hook, which turns
//! the old bytes into the current type step by step; a newer version than this build knows is
//! refused with a message that says to upgrade. Tests keep golden bytes of each version so a
//! change that breaks old files fails loudly.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// A value kept in the store.
pub trait Stored: Serialize + DeserializeOwned {
    /// What it is, for error messages.
    const WHAT: &'static str;
    /// The format version written by this build.
    const VERSION: u8 = 1;

    /// Decodes a value written with an older `version`. The default knows no older versions.
    fn migrate(version: u8, _body: &[u8]) -> Result<Self, StoreError> {
        Err(StoreError::UnknownVersion {
            what: Self::WHAT,
            version,
        })
    }
}

/// Encodes a value with its version byte.
pub fn encode<T: Stored>(value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(256);
    out.push(T::VERSION);
    postcard::to_extend(value, out).map_err(|e| StoreError::Codec {
        what: T::WHAT,
        detail: e.to_string(),
    })
}

/// Decodes a value, migrating older versions.
pub fn decode<T: Stored>(bytes: &[u8]) -> Result<T, StoreError> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(StoreError::Codec {
            what: T::WHAT,
            detail: "empty value".into(),
        });
    };
    match version.cmp(&T::VERSION) {
        std::cmp::Ordering::Equal => postcard::from_bytes(body).map_err(|e| StoreError::Codec {
            what: T::WHAT,
            detail: e.to_string(),
        }),
        std::cmp::Ordering::Less => T::migrate(version, body),
        std::cmp::Ordering::Greater => Err(StoreError::UnknownVersion {
            what: T::WHAT,
            version,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct V2 {
        name: String,
        qty: u32,
    }

    impl Stored for V2 {
        const WHAT: &'static str = "test value";
        const VERSION: u8 = 2;
        fn migrate(version: u8, body: &[u8]) -> Result<Self, StoreError> {
            // Version 1 had only the name.
            assert_eq!(version, 1);
            let name: String = postcard::from_bytes(body).unwrap();
            Ok(Self { name, qty: 1 })
        }
    }

    #[test]
    fn current_version_round_trips() {
        let v = V2 {
            name: "x".into(),
            qty: 3,
        };
        let bytes = encode(&v).unwrap();
        assert_eq!(bytes, [2, 1, b'x', 3]);
        assert_eq!(decode::<V2>(&bytes).unwrap(), v);
    }

    #[test]
    fn older_version_goes_through_the_migration_hook() {
        let v1 = [1, 2, b'a', b'b'];
        assert_eq!(
            decode::<V2>(&v1).unwrap(),
            V2 {
                name: "ab".into(),
                qty: 1
            }
        );
    }

    #[test]
    fn newer_version_is_refused_with_advice() {
        let err = decode::<V2>(&[9, 0]).unwrap_err();
        assert!(err.to_string().contains("upgrade orderd"), "{err}");
        assert!(decode::<V2>(&[]).is_err());
    }
}
