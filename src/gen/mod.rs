//! Synthetic customer data for `cdp gen`.
//!
//! Given a person count, a seed and an output directory, [`generate`] invents a
//! population of households and writes how four SaaS-style sources would see
//! them: Salesforce contacts (`crm/contacts_2025.csv`, `crm/contacts_2026.csv`),
//! Shopify-like customers and orders (`shop/customers.jsonl`, `shop/orders.csv`),
//! Zendesk users (`support/users.csv`) and a consumer-data vendor file
//! (`enrichment/consumers.csv`), each with realistic mess: nicknames, typos,
//! odd case, stray whitespace, phone formats, missing values, stale addresses,
//! shared family emails and duplicates. `truth.csv` maps every person record to
//! the person it really belongs to. The same options always produce the same
//! bytes; households are generated and written one at a time, so memory does
//! not grow with the person count. Each file is written as `<name>.tmp` and
//! renamed into place only once every file is complete.
//!
//! With a [`PlantedCampaign`], the shop's orders carry a known campaign effect for
//! `cdp report` to find: see [`campaign`].

pub mod campaign;
mod data;
mod emit;
mod people;
mod rng;
mod surnames;
mod text;

pub use campaign::PlantedCampaign;
pub use surnames::SurnamePool;

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// What to generate and where.
pub struct GenOptions {
    /// Number of true persons (not records).
    pub persons: u64,
    /// Same seed, same bytes.
    pub seed: u64,
    /// Output directory; created if missing. Unrelated files are left alone.
    pub out: PathBuf,
    /// Census-shaped surnames, or a namesake-dense population for stress tests.
    pub surnames: SurnamePool,
    /// A campaign effect to plant in the orders; `None` leaves the data as it was.
    pub campaign: Option<PlantedCampaign>,
}

/// What [`generate`] wrote.
pub struct GenReport {
    /// Persons generated (equals [`GenOptions::persons`]).
    pub persons: u64,
    /// Households the persons were grouped into.
    pub households: u64,
    /// Every file written, in a fixed order.
    pub files: Vec<GeneratedFile>,
}

/// One output file.
pub struct GeneratedFile {
    /// Relative to [`GenOptions::out`].
    pub path: PathBuf,
    /// Data rows, excluding any header line.
    pub rows: u64,
}

/// Output files, in the order of `FILES`.
#[derive(Clone, Copy)]
enum Out {
    Crm2025,
    Crm2026,
    Customers,
    Orders,
    Support,
    Enrichment,
    Truth,
}

const CONTACT_HEADER: &str = "Id,FirstName,LastName,Email,Phone,MobilePhone,MailingStreet,\
MailingCity,MailingState,MailingPostalCode,MailingCountry,Birthdate,LastModifiedDate";

/// Path relative to `out` and header line (empty for JSON Lines).
const FILES: [(&str, &str); 7] = [
    ("crm/contacts_2025.csv", CONTACT_HEADER),
    ("crm/contacts_2026.csv", CONTACT_HEADER),
    ("shop/customers.jsonl", ""),
    (
        "shop/orders.csv",
        "order_id,customer_id,ordered_at,currency,total_price",
    ),
    (
        "support/users.csv",
        "id,name,email,phone,created_at,updated_at",
    ),
    (
        "enrichment/consumers.csv",
        "match_key,first_nm,last_nm,dob,addr_line1,city,st,zip5,phone_number,\
email_addr,hh_income_band,hh_size",
    ),
    ("truth.csv", "source,record_id,person_id"),
];

/// Generates `opts.persons` persons from `opts.seed` and writes every source
/// file under `opts.out`.
///
/// Calls `progress(persons_done)` now and then (every ~10,000 persons and at
/// the end). If writing fails, the `.tmp` files are removed and no existing
/// file has been replaced yet.
pub fn generate(opts: &GenOptions, progress: &mut dyn FnMut(u64)) -> io::Result<GenReport> {
    let mut sinks = Sinks::create(&opts.out)?;
    match run(opts, &mut sinks, progress) {
        Ok(households) => Ok(GenReport {
            persons: opts.persons,
            households,
            files: sinks.commit()?,
        }),
        Err(e) => {
            sinks.discard();
            Err(e)
        }
    }
}

fn run(opts: &GenOptions, sinks: &mut Sinks, progress: &mut dyn FnMut(u64)) -> io::Result<u64> {
    let mut emitter = emit::Emitter::new(opts.seed, opts.surnames, opts.campaign.clone());
    let mut done = 0;
    while done < opts.persons {
        let size = emitter.household(sinks, done + 1, opts.persons - done)?;
        if (done + size) / 10_000 > done / 10_000 {
            progress(done + size);
        }
        done += size;
    }
    emitter.finish(sinks)?;
    progress(done);
    Ok(emitter.households())
}

struct Sink {
    path: PathBuf,
    final_path: PathBuf,
    tmp_path: PathBuf,
    writer: BufWriter<File>,
    rows: u64,
}

/// The open `.tmp` files plus a reusable line buffer.
struct Sinks {
    files: Vec<Sink>,
    line: String,
}

impl Sinks {
    fn create(out: &Path) -> io::Result<Self> {
        let mut sinks = Sinks {
            files: Vec::new(),
            line: String::new(),
        };
        for (path, header) in FILES {
            if let Err(e) = sinks.open(out, path, header) {
                sinks.discard();
                return Err(e);
            }
        }
        Ok(sinks)
    }

    fn open(&mut self, out: &Path, path: &str, header: &str) -> io::Result<()> {
        let final_path = out.join(path);
        if let Some(dir) = final_path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut tmp_name = final_path.clone().into_os_string();
        tmp_name.push(".tmp");
        let tmp_path = PathBuf::from(tmp_name);
        let mut writer = BufWriter::with_capacity(1 << 16, File::create(&tmp_path)?);
        if !header.is_empty() {
            writeln!(writer, "{header}")?;
        }
        self.files.push(Sink {
            path: PathBuf::from(path),
            final_path,
            tmp_path,
            writer,
            rows: 0,
        });
        Ok(())
    }

    /// Writes one CSV row to `to`.
    fn csv(&mut self, to: Out, fields: &[&str]) -> io::Result<()> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        text::csv_line(&mut line, fields);
        let result = self.raw(to, &line);
        self.line = line;
        result
    }

    /// Writes one complete line (including its `\n`) to `to`.
    fn raw(&mut self, to: Out, line: &str) -> io::Result<()> {
        let sink = &mut self.files[to as usize];
        sink.rows += 1;
        sink.writer.write_all(line.as_bytes())
    }

    /// Flushes everything, then moves each file into place.
    fn commit(mut self) -> io::Result<Vec<GeneratedFile>> {
        if let Err(e) = self.files.iter_mut().try_for_each(|s| s.writer.flush()) {
            self.discard();
            return Err(e);
        }
        let mut report = Vec::new();
        for sink in self.files {
            fs::rename(&sink.tmp_path, &sink.final_path)?;
            report.push(GeneratedFile {
                path: sink.path,
                rows: sink.rows,
            });
        }
        Ok(report)
    }

    /// Best-effort cleanup after a failure; the original error matters more.
    fn discard(self) {
        for sink in self.files {
            drop(sink.writer);
            let _ = fs::remove_file(&sink.tmp_path);
        }
    }
}

#[cfg(test)]
mod tests;
