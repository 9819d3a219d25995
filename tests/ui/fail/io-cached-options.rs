//! The options of `cached`'s `#[io_cached]` (`disk`, `redis`, `map_error`): each refused with
//! the `async_store = ..` to write instead.
use memoflight::cached;

#[cached(disk = true, redis = true, map_error = r##"|e| e.to_string()"##)]
fn io(n: u64) -> Result<u64, String> {
    Ok(n)
}

fn main() {}
