export {
  CACHE_NAME,
  type CacheDiskInfo,
  cacheNameFor,
  cachesDir,
  type EnsureCacheOptions,
  ensureCacheDisk,
  listCacheDisks,
  removeCacheDisk,
} from './cache-disk.js';
