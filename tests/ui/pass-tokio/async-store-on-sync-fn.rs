use memoflight::{cached, AsyncStore};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
struct Remote<K, V>(Mutex<HashMap<K, V>>);

impl<K, V> AsyncStore for Remote<K, V>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync,
    V: Clone + Send + Sync,
{
    type Key = K;
    type Value = V;
    type Error = std::io::Error;

    async fn get(&self, key: &K) -> std::io::Result<Option<V>> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }
    async fn insert(&self, key: K, value: V) -> std::io::Result<()> {
        self.0.lock().unwrap().insert(key, value);
        Ok(())
    }
    async fn remove(&self, key: &K) -> std::io::Result<()> {
        self.0.lock().unwrap().remove(key);
        Ok(())
    }
    async fn clear(&self) -> std::io::Result<()> {
        self.0.lock().unwrap().clear();
        Ok(())
    }
    async fn len(&self) -> std::io::Result<usize> {
        Ok(self.0.lock().unwrap().len())
    }
}

#[cached(async_store = Remote::default())]
fn borrowed(name: &str, times: usize) -> String {
    name.repeat(times)
}

#[cached(async_store = Remote::default(), convert = id)]
fn selected(_db: &str, id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {
    assert_eq!(borrowed("ab", 2), "abab");
    assert_eq!(borrowed_with_origin("ab", 2).1, memoflight::Origin::Hit);
    assert_eq!(selected("db", 3), Ok(3));
    let cache = borrowed_cache();
    cache.block_on(cache.clear()).unwrap();
}
