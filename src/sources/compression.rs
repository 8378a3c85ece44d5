//! Compressed inputs: gzip and zstd files are known by their first bytes (whatever
//! their name), so a `contacts.csv.gz` or `events.jsonl.zst` reads as its content. Files
//! are landed as they are; the row counter and the cleaner read them through [`open`].
//! Text in UTF-16 (known by its byte-order mark, `FF FE` or `FE FF`) is decoded to
//! UTF-8 on the way, so a spreadsheet's "Unicode text" export reads like any other.

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
    let content: Decoded = if head.starts_with(GZIP) {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else if head.starts_with(ZSTD) {
        Box::new(zstd::stream::read::Decoder::with_buffer(reader)?)
    } else {
        Box::new(reader)
    };
    let mut content = BufReader::new(content);
    let head = content.fill_buf()?;
    let big_endian = match head.get(..2) {
        Some([0xff, 0xfe]) => false,
        Some([0xfe, 0xff]) => true,
        _ => return Ok(Box::new(content)),
    };
    content.consume(2);
    Ok(Box::new(Utf16 {
        inner: content,
        big_endian,
        out: Vec::new(),
        pos: 0,
    }))
}

/// UTF-16 text read as UTF-8. An unpaired surrogate or an odd last byte becomes
/// U+FFFD, which the cleaner then reads as text (it never fails the file).
struct Utf16<R> {
    inner: R,
    big_endian: bool,
    out: Vec<u8>,
    pos: usize,
}

impl<R: Read> Utf16<R> {
    /// The next 16-bit unit; `Ok(None)` at the end, `Err` on a read error.
    fn unit(&mut self) -> io::Result<Option<Result<u16, ()>>> {
        let mut b = [0u8; 2];
        let mut got = 0;
        while got < 2 {
            match self.inner.read(&mut b[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(match got {
            0 => None,
            1 => Some(Err(())),
            _ if self.big_endian => Some(Ok(u16::from_be_bytes(b))),
            _ => Some(Ok(u16::from_le_bytes(b))),
        })
    }

    fn refill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.pos = 0;
        let mut pending: Option<u16> = None;
        while self.out.len() < 8192 {
            let unit = match pending.take() {
                Some(u) => u,
                None => match self.unit()? {
                    None => break,
                    Some(Err(())) => {
                        self.push('\u{fffd}');
                        break;
                    }
                    Some(Ok(u)) => u,
                },
            };
            let c = if (0xD800..0xDC00).contains(&unit) {
                match self.unit()? {
                    Some(Ok(low)) if (0xDC00..0xE000).contains(&low) => char::from_u32(
                        0x10000 + ((u32::from(unit) - 0xD800) << 10) + (u32::from(low) - 0xDC00),
                    ),
                    Some(Ok(other)) => {
                        pending = Some(other);
                        None
                    }
                    _ => None,
                }
            } else {
                char::from_u32(u32::from(unit))
            };
            self.push(c.unwrap_or('\u{fffd}'));
        }
        if let Some(u) = pending {
            // A unit read ahead after a lone surrogate: keep it for the next call.
            self.push(char::from_u32(u32::from(u)).unwrap_or('\u{fffd}'));
        }
        Ok(())
    }

    fn push(&mut self, c: char) {
        let mut buf = [0u8; 4];
        self.out
            .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}

impl<R: Read> Read for Utf16<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.out.len() {
            self.refill()?;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
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
        // UTF-16 both ways, with a character outside the BMP.
        let text16 = "Id,Name\n1,Zoë 😀\n";
        let mut le = vec![0xff, 0xfe];
        let mut be = vec![0xfe, 0xff];
        for u in text16.encode_utf16() {
            le.extend_from_slice(&u.to_le_bytes());
            be.extend_from_slice(&u.to_be_bytes());
        }
        for (name, bytes) in [("le.csv", le), ("be.csv", be)] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(read_all(&path), text16, "{name}");
        }
        let empty = dir.path().join("empty.csv");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(read_all(&empty), "");
    }
}
