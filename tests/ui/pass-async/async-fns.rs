use memoflight::cached;

#[cached]
async fn plain(n: u32) -> u32 {
    n
}

#[cached]
pub async fn borrowed(name: &str, times: usize) -> String {
    name.repeat(times)
}

#[cached(max_size = 10, ttl = "1m")]
async fn fallible(n: u32) -> Result<u32, String> {
    Ok(n)
}

#[cached(convert = id)]
async fn with_handle(_db: &str, id: u64) -> Option<u64> {
    Some(id)
}

fn main() {
    let all = async {
        plain(1).await as usize
            + borrowed("a", 2).await.len()
            + fallible(3).await.unwrap() as usize
            + with_handle("db", 4).await.unwrap() as usize
            + plain_with_origin(1).await.0 as usize
    };
    assert_eq!(futures::executor::block_on(all), 11);
}
