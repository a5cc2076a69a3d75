//! Item photos: an admin uploads one per menu item; the box decodes it (JPEG, PNG or WebP,
//! turned upright by its EXIF orientation), shrinks it to at most [`MAX_SIDE`] pixels on its
//! longer side, and keeps it as a JPEG in `<data_dir>/photos/<item>.jpg`, within the
//! configured budget (`[limits] photos_budget_bytes`). The guest page loads them lazily from
//! `/photos/<item>.jpg?v=<version>`, cached for good (a new upload has a new version).
//!
//! Photos are files next to the store, not in it: they are not events and not uploaded to
//! the collector, and `orderd backup` does not carry them (copy the folder, or upload again).

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Longest side of a stored photo, in pixels (sharp on a phone, small on the Wi-Fi).
pub const MAX_SIDE: u32 = 640;
/// JPEG quality of a stored photo.
const QUALITY: u8 = 80;
/// Largest picture decoded, per side: a bigger one is refused before it takes memory.
const MAX_DECODE_SIDE: u32 = 12_000;
/// Most memory a decode may take.
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;

/// Why a photo was not stored.
#[derive(Debug)]
pub enum PhotoError {
    /// Not a JPEG, PNG or WebP picture the box can read (or too large to decode).
    Unreadable(String),
    /// Storing it would pass the budget.
    OverBudget {
        /// Bytes the photos would take with it.
        needed: u64,
        /// The budget.
        budget: u64,
    },
    /// The disk.
    Io(std::io::Error),
}

impl std::fmt::Display for PhotoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreadable(e) => {
                write!(f, "not a JPEG, PNG or WebP picture the box can read: {e}")
            }
            Self::OverBudget { needed, budget } => write!(
                f,
                "the photos would take {needed} bytes, over the budget of {budget} ([limits] photos_budget_bytes); remove some first"
            ),
            Self::Io(e) => write!(f, "storing the photo failed: {e}"),
        }
    }
}

/// The stored photos: item id → (version, bytes).
#[derive(Debug)]
pub struct Photos {
    dir: PathBuf,
    budget: u64,
    index: Mutex<HashMap<String, (String, u64)>>,
}

fn version_of(meta: &std::fs::Metadata) -> String {
    let nanos = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{:x}", (nanos as u64) ^ meta.len().rotate_left(32))
}

impl Photos {
    /// The photos in `<data_dir>/photos` (created, 0700, if missing).
    pub fn open(data_dir: &Path, budget: u64) -> std::io::Result<Self> {
        let dir = data_dir.join("photos");
        crate::files::private_dir(&dir)?;
        let mut index = HashMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".jpg")) else {
                continue;
            };
            if crate::config::is_slug(id, 64) {
                let meta = entry.metadata()?;
                index.insert(id.to_owned(), (version_of(&meta), meta.len()));
            }
        }
        Ok(Self {
            dir,
            budget,
            index: Mutex::new(index),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, u64)>> {
        self.index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Item id → the photo's URL, for every item that has one.
    pub fn urls(&self) -> HashMap<String, String> {
        self.lock()
            .iter()
            .map(|(id, (v, _))| (id.clone(), format!("/photos/{id}.jpg?v={v}")))
            .collect()
    }

    /// Bytes the photos take.
    pub fn used(&self) -> u64 {
        self.lock().values().map(|(_, n)| n).sum()
    }

    /// The file of an item's photo, if it has one (`item` must be a menu id).
    pub fn file(&self, item: &str) -> Option<PathBuf> {
        self.lock()
            .contains_key(item)
            .then(|| self.dir.join(format!("{item}.jpg")))
    }

    /// Shrinks and stores a picture as `item`'s photo (replacing any), blocking: run it off
    /// the async workers. Returns its URL and size.
    pub fn store(&self, item: &str, picture: &[u8]) -> Result<(String, u64), PhotoError> {
        let jpeg = shrink(picture)?;
        let size = jpeg.len() as u64;
        {
            let index = self.lock();
            let others: u64 = index
                .iter()
                .filter(|(id, _)| id.as_str() != item)
                .map(|(_, (_, n))| n)
                .sum();
            if others + size > self.budget {
                return Err(PhotoError::OverBudget {
                    needed: others + size,
                    budget: self.budget,
                });
            }
        }
        let path = self.dir.join(format!("{item}.jpg"));
        let tmp = self.dir.join(format!(".{item}.jpg.tmp"));
        let write = || -> std::io::Result<std::fs::Metadata> {
            use std::io::Write as _;
            let mut f = crate::files::create(&tmp)?;
            f.write_all(&jpeg)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            crate::files::sync_dir(&self.dir)?;
            std::fs::metadata(&path)
        };
        let meta = write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            PhotoError::Io(e)
        })?;
        let version = version_of(&meta);
        self.lock().insert(item.to_owned(), (version.clone(), size));
        Ok((format!("/photos/{item}.jpg?v={version}"), size))
    }

    /// Removes an item's photo; whether it had one.
    pub fn remove(&self, item: &str) -> std::io::Result<bool> {
        if self.lock().remove(item).is_none() {
            return Ok(false);
        }
        match std::fs::remove_file(self.dir.join(format!("{item}.jpg"))) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// A picture read (upright) and shrunk to at most [`MAX_SIDE`] on its longer side, as JPEG.
pub fn shrink(picture: &[u8]) -> Result<Vec<u8>, PhotoError> {
    use image::{DynamicImage, ImageDecoder as _, ImageReader};
    let bad = |e: image::ImageError| PhotoError::Unreadable(e.to_string());
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DECODE_SIDE);
    limits.max_image_height = Some(MAX_DECODE_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = ImageReader::new(Cursor::new(picture))
        .with_guessed_format()
        .map_err(|e| PhotoError::Unreadable(e.to_string()))?;
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let orientation = decoder.orientation().map_err(bad)?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(bad)?;
    img.apply_orientation(orientation);
    if img.width().max(img.height()) > MAX_SIDE {
        img = img.resize(MAX_SIDE, MAX_SIDE, image::imageops::FilterType::Triangle);
    }
    let rgb = img.to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode(
            rgb.as_raw(),
            rgb.width(),
            rgb.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(bad)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn a_large_picture_is_shrunk_to_a_small_jpeg_and_keeps_its_shape() {
        let jpeg = shrink(&png(1600, 1200)).unwrap();
        let back = image::load_from_memory(&jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (640, 480));
        assert_eq!(&jpeg[..2], &[0xff, 0xd8], "a JPEG");
        // A small one keeps its size.
        let small = image::load_from_memory(&shrink(&png(200, 100)).unwrap()).unwrap();
        assert_eq!((small.width(), small.height()), (200, 100));
        // Not a picture, a truncated one, or one too large to decode.
        assert!(matches!(shrink(b"hello"), Err(PhotoError::Unreadable(_))));
        let cut = png(300, 300);
        assert!(matches!(
            shrink(&cut[..cut.len() / 2]),
            Err(PhotoError::Unreadable(_))
        ));
    }

    #[test]
    fn photos_stay_within_their_budget_and_are_found_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let photos = Photos::open(dir.path(), 60_000).unwrap();
        let (url, size) = photos.store("burger", &png(1600, 1200)).unwrap();
        assert!(url.starts_with("/photos/burger.jpg?v="), "{url}");
        assert_eq!(photos.used(), size);
        // Replacing a photo counts only the new one.
        photos.store("burger", &png(1600, 1200)).unwrap();
        assert_eq!(photos.used(), size);
        let mut n = 0;
        let over = loop {
            n += 1;
            match photos.store(&format!("dish-{n}"), &png(1600, 1200)) {
                Ok(_) => assert!(photos.used() <= 60_000),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(over, PhotoError::OverBudget { budget: 60_000, .. }),
            "{over}"
        );
        let again = Photos::open(dir.path(), 60_000).unwrap();
        assert_eq!(again.urls(), photos.urls());
        assert!(again.remove("burger").unwrap());
        assert!(!again.remove("burger").unwrap());
        assert!(again.file("burger").is_none());
    }
}
