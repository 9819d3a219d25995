//! `force_refresh` on a method that `#[async_trait]` rewrote: refused on the option, saying
//! what to call instead.
use memoflight::cached;

#[async_trait::async_trait]
trait Catalog {
    async fn title(&self, id: u32, fresh: bool) -> String;
}

struct Shop;

#[async_trait::async_trait]
impl Catalog for Shop {
    #[cached(convert = id, force_refresh = fresh)]
    async fn title(&self, id: u32, fresh: bool) -> String {
        let _ = fresh;
        format!("title {id}")
    }
}

fn main() {}
