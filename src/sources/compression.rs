//! Compressed inputs: gzip and zstd files are known by their first bytes (whatever
//! their name), so a `contacts.csv.gz` or `events.jsonl.zst` reads as its content. Files
//! are landed as they are; the row counter and the cleaner read them through [`open`].

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// A reader over a file's content, decompressed when it was compressed.
pub type Decoded = Box<dyn Read + Send>;

const GZIP: &[u8] = &[0x1f, 0x8b];
const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

pub fn open(path: &Path) -> io::Result<Decoded> {
    decode(File::open(path)?)
}

pub fn decode(file: File) -> io::Result<Decoded> {
    let mut reader = BufReader::new(file);
    let head = reader.fill_buf()?;
    Ok(if head.starts_with(GZIP) {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else if head.starts_with(ZSTD) {
        Box::new(zstd::stream::read::Decoder::with_buffer(reader)?)
    } else {
        Box::new(reader)
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn read_all(path: &Path) -> String {
        let mut text = String::new();
        open(path).unwrap().read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn gzip_zstd_and_plain_files_read_as_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let text = "Id,Email\n1,a@x\n";
        let plain = dir.path().join("a.csv");
        std::fs::write(&plain, text).unwrap();
        let gz = dir.path().join("a.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), Default::default());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap();
        let zst = dir.path().join("a.bin");
        std::fs::write(&zst, zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
        for path in [&plain, &gz, &zst] {
            assert_eq!(read_all(path), text, "{}", path.display());
        }
        let empty = dir.path().join("empty.csv");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(read_all(&empty), "");
    }
}
