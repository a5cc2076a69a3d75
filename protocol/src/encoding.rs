//! Payload encodings: JSON (the default, readable by any device) or postcard (compact, for
//! constrained devices), chosen per device.

use alloc::vec::Vec;
use core::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// How a device wants its payloads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// UTF-8 JSON.
    #[default]
    Json,
    /// postcard (serde's compact binary format; byte strings stay raw).
    Postcard,
}

/// A payload that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub Encoding);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "payload is not valid {:?} for this message", self.0)
    }
}

impl core::error::Error for CodecError {}

/// Encodes a payload.
pub fn encode<T: Serialize>(value: &T, encoding: Encoding) -> Result<Vec<u8>, CodecError> {
    match encoding {
        Encoding::Json => serde_json::to_vec(value).map_err(|_| CodecError(encoding)),
        Encoding::Postcard => postcard::to_allocvec(value).map_err(|_| CodecError(encoding)),
    }
}

/// Decodes a payload.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], encoding: Encoding) -> Result<T, CodecError> {
    match encoding {
        Encoding::Json => serde_json::from_slice(bytes).map_err(|_| CodecError(encoding)),
        Encoding::Postcard => postcard::from_bytes(bytes).map_err(|_| CodecError(encoding)),
    }
}

/// Serde helper for byte strings: base64 text in JSON, raw bytes in postcard.
pub mod bytes {
    use alloc::string::String;
    use alloc::vec::Vec;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes.
    pub fn serialize<S: Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&STANDARD.encode(data))
        } else {
            s.serialize_bytes(data)
        }
    }

    /// Deserializes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            STANDARD
                .decode(text.as_bytes())
                .map_err(serde::de::Error::custom)
        } else {
            let raw: &[u8] = <&[u8]>::deserialize(d)?;
            Ok(raw.to_vec())
        }
    }
}
