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
pub async fn borrowed(name: &str, times: usize) -> String {
    name.repeat(times)
}

#[cached(async_store = Remote::default(), convert = id)]
async fn selected(_db: &str, id: u64) -> Result<u64, String> {
    Ok(id)
}

#[cached(async_store = Remote::default(), convert = { id % 10 }, key = u64)]
async fn converted(id: u64) -> Option<u64> {
    Some(id)
}

fn main() {
    let all = async {
        let mut total = borrowed("a", 2).await.len() as u64;
        total += selected("db", 4).await.unwrap();
        total += converted(13).await.unwrap();
        total += borrowed_with_origin("a", 2).await.0.len() as u64;
        total += borrowed_no_cache("b", 1).await.len() as u64;
        converted_cache().invalidate(&3).await.unwrap();
        let stats = borrowed_cache().stats().await.unwrap();
        total + stats.hits
    };
    let total = futures::executor::block_on(all);
    assert_eq!(total, 2 + 4 + 13 + 2 + 1 + 1);
}
