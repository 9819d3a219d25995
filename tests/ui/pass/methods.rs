use memoflight::cached;

struct Service {
    shard: u8,
}

impl Service {
    #[cached(convert = (self.shard, key.to_owned()), key = (u8, String))]
    pub fn lookup(&self, key: &str) -> Option<usize> {
        Some(key.len() + self.shard as usize)
    }

    #[cached(convert = n, ttl = "1m")]
    fn by_value(self: &Self, n: u64) -> u64 {
        n
    }

    #[cached(convert = n)]
    fn exclusive(&mut self, n: u64) -> u64 {
        self.shard = n as u8;
        n
    }
}

fn main() {
    let mut service = Service { shard: 1 };
    assert_eq!(service.lookup("ab"), Some(3));
    assert_eq!(service.by_value(2), 2);
    assert_eq!(service.exclusive(4), 4);
    assert_eq!(Service::lookup_cache().len(), 1);
}
