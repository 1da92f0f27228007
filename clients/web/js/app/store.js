// The browser's profile store: every enrolled device of this browser, in IndexedDB.
//
// A profile is one enrolled device (one channel, one member, one device name). It has three records,
// one per object store, all keyed by the profile id:
//   profiles  what it is: channel, member, device, role, relay id and the relay key pinned at enrollment;
//   keys      its private keys as NON-EXTRACTABLE CryptoKeys (IndexedDB keeps them as they are: script can
//             use them while the page is open, never read them out) with the signed prekeys;
//   state     what it remembers: pins, receiver state, sequence counters, outboxes, received messages,
//             sent messages with their ladders, alarms, tree heads seen.
// Changes to the state are load–modify–save under a Web Lock named after the profile, so two tabs of one
// profile never overwrite each other's changes (the same rule as the CLI's flock on its profile directory).

const DB_NAME = "hotline";
const DB_VERSION = 1;
const STORES = ["profiles", "keys", "state"];

/** @type {Promise<IDBDatabase> | null} */
let opening = null;

/** @returns {Promise<IDBDatabase>} */
function database() {
  opening ??= new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      for (const name of STORES) if (!db.objectStoreNames.contains(name)) db.createObjectStore(name, { keyPath: "id" });
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error("IndexedDB is unavailable"));
    request.onblocked = () => reject(new Error("another tab holds an older version of the profile store open"));
  });
  return opening;
}

/**
 * Run one IndexedDB request in its own transaction.
 * @template T
 * @param {string} store
 * @param {IDBTransactionMode} mode
 * @param {(s: IDBObjectStore) => IDBRequest<T>} fn
 * @returns {Promise<T>}
 */
async function one(store, mode, fn) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(store, mode);
    const request = fn(tx.objectStore(store));
    let result = /** @type {T} */ (/** @type {unknown} */ (undefined));
    request.onsuccess = () => {
      result = request.result;
    };
    // Resolve on commit, not on success: a write is durable only when its transaction completes.
    tx.oncomplete = () => resolve(result);
    tx.onerror = () => reject(tx.error ?? request.error);
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

/**
 * Write several records in one transaction (all or nothing).
 * @param {Array<[string, object]>} puts [store, record]
 */
async function putAll(puts) {
  const db = await database();
  const names = [...new Set(puts.map(([store]) => store))];
  return new Promise((resolve, reject) => {
    const tx = db.transaction(names, "readwrite");
    for (const [store, record] of puts) tx.objectStore(store).put(record);
    tx.oncomplete = () => resolve(undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

/**
 * Run `fn` holding the profile's lock (across tabs, where the Web Locks API exists).
 * @template T
 * @param {string} id
 * @param {() => Promise<T>} fn
 * @returns {Promise<T>}
 */
function withLock(id, fn) {
  if (navigator.locks) return navigator.locks.request(`hotline-profile-${id}`, fn);
  return fn();
}

/** @typedef {{id: string, channel: string, member: string, device: string, role: string, suite: string,
 *   relayId: string, relayPublicKey: string, relayUrl: string, createdAtMs: number}} ProfileInfo */

export const profileStore = {
  /** @returns {Promise<ProfileInfo[]>} every profile, oldest first */
  async list() {
    const all = /** @type {ProfileInfo[]} */ (await one("profiles", "readonly", (s) => s.getAll()));
    return all.sort((a, b) => a.createdAtMs - b.createdAtMs);
  },

  /** @param {string} id @returns {Promise<ProfileInfo | undefined>} */
  get(id) {
    return one("profiles", "readonly", (s) => s.get(id));
  },

  /** @param {string} id */
  getKeys(id) {
    return one("keys", "readonly", (s) => s.get(id));
  },

  /** @param {string} id @returns {Promise<any>} */
  getState(id) {
    return one("state", "readonly", (s) => s.get(id));
  },

  /**
   * A new profile: all three records in one transaction, so a profile never exists half-written.
   * @param {ProfileInfo} info
   * @param {object} keys
   * @param {object} state
   */
  create(info, keys, state) {
    return putAll([
      ["profiles", info],
      ["keys", { ...keys, id: info.id }],
      ["state", { ...state, id: info.id }],
    ]);
  },

  /** @param {string} id @param {object} keys */
  putKeys(id, keys) {
    return withLock(id, () => putAll([["keys", { ...keys, id }]]));
  },

  /**
   * Load the state, let `fn` change it, save it — under the profile's lock. Returns what `fn` returns.
   * @template T
   * @param {string} id
   * @param {(state: any) => T | Promise<T>} fn
   * @returns {Promise<T>}
   */
  edit(id, fn) {
    return withLock(id, async () => {
      const state = await one("state", "readonly", (s) => s.get(id));
      if (!state) throw new Error("this profile has no state");
      const result = await fn(state);
      await putAll([["state", state]]);
      return result;
    });
  },

  /** Forget a profile and its keys for good. @param {string} id */
  async remove(id) {
    const db = await database();
    await withLock(
      id,
      () =>
        new Promise((resolve, reject) => {
          const tx = db.transaction(STORES, "readwrite");
          for (const name of STORES) tx.objectStore(name).delete(id);
          tx.oncomplete = () => resolve(undefined);
          tx.onerror = () => reject(tx.error);
        }),
    );
  },
};
