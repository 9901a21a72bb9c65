//! This machine's own limits, measured in the same run as Alluvium: tmpfs read(2)/write(2),
//! pread of 4 KiB at random offsets, a raw loopback TCP stream and a loopback round trip.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use alluvium_common::{Error, Result};

pub const CHUNK: usize = 4 << 20;

/// MiB/s of writing `size` bytes to a new file with write(2) in 4 MiB chunks.
pub fn file_write(path: &Path, size: u64, data: &[u8]) -> Result<f64> {
    let start = Instant::now();
    let mut f = File::create(path).map_err(Error::from)?;
    let mut left = size as usize;
    while left > 0 {
        let n = left.min(data.len());
        f.write_all(&data[..n]).map_err(Error::from)?;
        left -= n;
    }
    drop(f);
    Ok(mib_per_s(size, start))
}

/// MiB/s of reading a whole file with read(2) into a 4 MiB buffer.
pub fn file_read(path: &Path) -> Result<f64> {
    let start = Instant::now();
    let mut f = File::open(path).map_err(Error::from)?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(Error::from)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    Ok(mib_per_s(total, start))
}

/// IOPS of 4 KiB preads at random 4 KiB-aligned offsets, `threads` threads of `ops` each.
pub fn pread_random(path: &Path, size: u64, threads: usize, ops: usize) -> Result<f64> {
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> Result<()> {
                    let f = File::open(path).map_err(Error::from)?;
                    let mut buf = [0u8; 4096];
                    let mut rng = Rng::new(t as u64 + 1);
                    for _ in 0..ops {
                        let off = rng.below(size / 4096) * 4096;
                        f.read_at(&mut buf, off).map_err(Error::from)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| Error::internal("pread thread panicked"))??;
        }
        Ok::<(), Error>(())
    })?;
    Ok((threads * ops) as f64 / start.elapsed().as_secs_f64())
}

/// MiB/s of one raw TCP stream of `size` bytes over loopback (writer and reader threads), the
/// writer sending the same 4 MiB buffer again and again (it stays in the CPU's caches).
pub fn tcp_stream(size: u64, data: &[u8]) -> Result<f64> {
    tcp_stream_of(size, |s| {
        let mut left = size as usize;
        while left > 0 {
            let n = left.min(data.len());
            s.write_all(&data[..n])?;
            left -= n;
        }
        Ok(())
    })
}

/// MiB/s of one raw TCP stream over loopback of a whole file's bytes, written from a populated
/// read-only mapping of it: what a server sending a file that is in memory (tmpfs) can reach,
/// each byte read from memory once rather than from a cached buffer.
pub fn tcp_stream_file(path: &Path) -> Result<f64> {
    let file = File::open(path).map_err(Error::from)?;
    // SAFETY: a read-only mapping of a file only this process writes, and not while mapped.
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.map_err(Error::from)?;
    tcp_stream_of(map.len() as u64, |s| s.write_all(&map))
}

fn tcp_stream_of(
    size: u64,
    write: impl FnOnce(&mut TcpStream) -> std::io::Result<()>,
) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(Error::from)?;
    let addr = listener.local_addr().map_err(Error::from)?;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
    });
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).map_err(Error::from)?;
    write(&mut s).map_err(Error::from)?;
    drop(s);
    let got = reader
        .join()
        .map_err(|_| Error::internal("tcp reader panicked"))?
        .map_err(Error::from)?;
    if got != size {
        return Err(Error::internal(format!(
            "tcp baseline read {got} of {size} bytes"
        )));
    }
    Ok(mib_per_s(size, start))
}

/// Round-trip latencies (µs) of `n` one-byte ping-pongs over a loopback TCP connection.
pub fn tcp_round_trips(n: usize) -> Result<Vec<f64>> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(Error::from)?;
    let addr = listener.local_addr().map_err(Error::from)?;
    let server = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut b = [0u8; 1];
        while s.read(&mut b)? == 1 {
            s.write_all(&b)?;
        }
        Ok(())
    });
    let mut s = TcpStream::connect(addr).map_err(Error::from)?;
    s.set_nodelay(true).map_err(Error::from)?;
    let mut lat = Vec::with_capacity(n);
    let mut b = [7u8; 1];
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(&b).map_err(Error::from)?;
        s.read_exact(&mut b).map_err(Error::from)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(s);
    let _ = server.join();
    Ok(lat)
}

pub fn mib_per_s(bytes: u64, start: Instant) -> f64 {
    bytes as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64()
}

/// xorshift64*: reproducible offsets without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// The p-th percentile (0..=100) of unsorted samples.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut v = samples.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[idx.min(v.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baselines_measure_something() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data = vec![1u8; 1 << 20];
        assert!(file_write(&p, 4 << 20, &data).unwrap() > 0.0);
        assert!(file_read(&p).unwrap() > 0.0);
        assert!(pread_random(&p, 4 << 20, 2, 100).unwrap() > 0.0);
        assert!(tcp_stream(4 << 20, &data).unwrap() > 0.0);
        assert!(tcp_stream_file(&p).unwrap() > 0.0);
        let rtt = tcp_round_trips(50).unwrap();
        assert_eq!(rtt.len(), 50);
        assert!(percentile(&rtt, 50.0) > 0.0);
    }
}
