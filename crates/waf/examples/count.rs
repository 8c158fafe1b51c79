use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 { ALLOCS.fetch_add(1, Ordering::Relaxed); unsafe { System.alloc(l) } }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) { unsafe { System.dealloc(p, l) } }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 { ALLOCS.fetch_add(1, Ordering::Relaxed); unsafe { System.realloc(p, l, n) } }
}
#[global_allocator]
static A: Counting = Counting;
fn main() {
    let suite = rampart_waf::crs_test::Suite::new(rampart_waf::crs_test::crs_root().join("v4.28.0"));
    let engine = rampart_waf::crs_test::load_engine(&suite, false, 1).unwrap();
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1);
    let stat0 = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let u0: f64 = stat0.split_whitespace().nth(13).and_then(|x| x.parse().ok()).unwrap_or(0.0) / 100.0;
    eprintln!("cpu before loop {u0:.2}s");
    let t = std::time::Instant::now();
    for it in 0..n {
        let a0 = ALLOCS.load(Ordering::Relaxed);
        let mut tx = engine.transaction(Default::default());
        if it + 1 == n { eprintln!("allocs in new: {}", ALLOCS.load(Ordering::Relaxed) - a0); }
        let headers = [("Host", &b"shop.example.com"[..]), ("User-Agent", b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"), ("Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"), ("Accept-Language", b"en-US,en;q=0.5"), ("Accept-Encoding", b"gzip, deflate, br"), ("Cookie", b"session=3f2a9c0d1e; theme=dark")];
        let a0 = ALLOCS.load(Ordering::Relaxed);
        tx.process_request_headers("GET", "/products/shoes?page=2&sort=price", "HTTP/1.1", headers);
        if it + 1 == n { eprintln!("allocs in phase 1: {}", ALLOCS.load(Ordering::Relaxed) - a0); }
        let a0 = ALLOCS.load(Ordering::Relaxed);
        tx.process_request_body();
        if it + 1 == n { eprintln!("allocs in phase 2: {}", ALLOCS.load(Ordering::Relaxed) - a0); }
        if n == 1 { for m in tx.matched_rules() { eprintln!("{} {}", m.id, m.logged); } }
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = stat.split_whitespace().collect();
    let utime: f64 = f.get(13).and_then(|x| x.parse().ok()).unwrap_or(0.0) / 100.0;
    eprintln!("{:?}/iter wall, cpu total {utime:.2}s", t.elapsed() / n as u32);
}
