import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.KeyValue;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.h2.H2Database;
import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;
import org.h2.mvstore.MVMap;
import org.h2.mvstore.MVStore;
import org.h2.mvstore.WriteBuffer;
import org.h2.mvstore.type.ObjectDataType;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Local MongoDB-wire server for txnmon's dev stack: mongo-java-server with its H2 (on-disk) backend.
 *
 * Usage: java -cp 'lib/*' TxnmonMongoServer.java HOST PORT DATA_FILE
 *
 * mongo-java-server reports wire version 8 (MongoDB 4.2) by default; pymongo 4.16+ refuses
 * anything below 9, so the backend is told to announce MongoDB 4.4 (wire version 9), the oldest
 * version current drivers accept. The feature set is unchanged: only the handshake differs.
 *
 * Durability: an acknowledged write must survive a SIGKILL. By default the H2 MVStore commits from a
 * background thread about once a second (and then writes the chunk from two more executor threads), so a
 * killed JVM loses the writes of its last second although every one was acknowledged. Here the MVStore
 * is opened with auto-commit disabled, which also means no background writer and no asynchronous chunk
 * writer: MVStore.commit() writes the new chunk (and the file header when due) in the calling thread.
 * Every command that may write is committed by {@link DurableH2Backend} before it returns, i.e. before
 * mongo-java-server's wire handler sends the reply. A SIGKILL ends only the process; what commit() wrote
 * is in the OS page cache and reaches the disk later (no fsync: a power cut can still lose the last writes).
 * The background thread also kept the file compact; {@link #housekeeping} does that now.
 */
public final class TxnmonMongoServer {

    private static final MongoVersion MONGO_4_4 = new MongoVersion() {
        @Override
        public List<Integer> getVersionArray() {
            return List.of(4, 4, 0);
        }

        @Override
        public int getWireVersion() {
            return 9;
        }
    };

    /** How often the maintenance thread does what H2's background writer did besides committing. */
    private static final int MAINTENANCE_PERIOD_S = 1;
    /** Rewrite chunks whose live data is below this percentage (H2: autoCompactFillRate 90, halved if busy)... */
    private static final int CHUNK_TARGET_FILL_RATE = 45;
    /**
     * Bytes rewritten per round at most, so a round never holds the writers up for long: a round holds the store
     * lock, and every write waits for it. Rounds of 16 MB every 10 s took 0.4-1.8 s after a database was dropped
     * (measured with a log line here), and the processor's alerts waited as long behind them: the alert latency
     * p99 of `make bench` (issue 29). 1 MB each second rewrites two thirds as much, in rounds of 0-50 ms there.
     */
    private static final int MAINTENANCE_MAX_WRITE_BYTES = 1 << 20;
    /** A round slower than this is logged: a stall every client of the store felt. */
    private static final long SLOW_ROUND_MS = 100;

    /**
     * H2Backend that commits the MVStore after every command that may have written, before the reply is
     * sent. Both OP_MSG (AbstractMongoBackend.handleMessage) and OP_QUERY "$cmd" requests arrive here;
     * mongo-java-server builds and flushes the reply only after this method returns.
     */
    static final class DurableH2Backend extends H2Backend {

        /**
         * Commands that never change the store: no commit, so reads do not queue behind a writer's commit.
         * Anything not listed (insert, update, delete, findAndModify, create, drop, createIndexes,
         * dropIndexes, renameCollection, dropDatabase, collMod, unknown future commands ...) is committed.
         */
        private static final Set<String> READ_ONLY = Set.of(
            "find", "getmore", "count", "distinct", "killcursors", "explain",
            "listcollections", "listindexes", "listdatabases", "dbstats", "collstats", "datasize",
            "hello", "ismaster", "ping", "buildinfo", "serverstatus", "hostinfo", "whatsmyuri",
            "getcmdlineopts", "getparameter", "getlog", "getfreemonitoringstatus", "connectionstatus",
            "currentop", "endsessions", "startsession", "refreshsessions", "getlasterror");

        private final MVStore store;
        /**
         * Whether databases open with {@link KeyOrderedH2Database}. Static, as the store it is for: H2Backend's
         * constructor opens the databases already in the file, before a field of this class could be set.
         */
        static volatile boolean keysInPlace;

        /** {@code keysInPlace}: see the field. */
        static DurableH2Backend open(MVStore store, boolean keysInPlace) {
            DurableH2Backend.keysInPlace = keysInPlace;
            KeyOrderedH2Database.store = store;
            return new DurableH2Backend(store);
        }

        private DurableH2Backend(MVStore store) {
            super(store);
            this.store = store;
        }

        @Override
        protected MongoDatabase openOrCreateDatabase(String databaseName) {
            if (!keysInPlace) {
                return super.openOrCreateDatabase(databaseName);
            }
            return new KeyOrderedH2Database(databaseName, KeyOrderedH2Database.store, getCursorRegistry());
        }

        @Override
        public Document handleCommand(Channel channel, String databaseName, String command, Document query) {
            Document reply;
            try {
                reply = super.handleCommand(channel, databaseName, command, query);
            } catch (RuntimeException failed) {
                // a failing batch may still have applied part of its operations: keep what is there
                if (mayWrite(command, query)) {
                    try {
                        store.commit();
                    } catch (RuntimeException commitFailed) {
                        failed.addSuppressed(commitFailed);
                    }
                }
                throw failed;
            }
            if (mayWrite(command, query)) {
                // blocks until any commit running in another thread is done, then writes what is left;
                // if it throws, the client gets an error reply instead of an acknowledgement
                store.commit();
            }
            return reply;
        }

        static boolean mayWrite(String command, Document query) {
            String name = command.toLowerCase(Locale.ROOT);
            if (name.equals("aggregate")) {
                return writesOutput(query.get("pipeline"));
            }
            return !READ_ONLY.contains(name);
        }

        private static boolean writesOutput(Object pipeline) {
            if (!(pipeline instanceof List<?> stages)) {
                return true;  // malformed: cannot tell, so be safe
            }
            for (Object stage : stages) {
                if (stage instanceof Document doc && (doc.containsKey("$out") || doc.containsKey("$merge"))) {
                    return true;
                }
            }
            return false;
        }
    }

    /**
     * The order of unique-index keys, computed in place where it can be. H2 keeps a unique index (the `_id` one of
     * every collection) in an MVMap whose keys are mongo-java-server's KeyValues; they are not Comparable, so H2's
     * ObjectDataType compares two of them by Java-serializing both and comparing the bytes, at every step of every
     * B-tree search. A JFR profile put 75-83% of this server's CPU there (issue 29): the local stack's writes cost
     * several times what a MongoDB's do, and every batch of the processor waited for it.
     *
     * This type gives the same order without serializing, for the usual key: one String of ASCII characters
     * (no NUL) shorter than 65,536. Such a KeyValue serializes as the same prefix (its class, its ArrayList of one
     * element), then TC_STRING, the length as two big-endian bytes, the characters as bytes, then the same suffix:
     * so the bytes compare as (length, then characters). Any other pair is compared as before (serialized). A
     * plain key is also written to a page from those bytes built directly, not from a stream; reading is
     * ObjectDataType's own. So the order and the file are what they were: a file written before opens and is
     * searched alike (tests/integration/stack/test_store_keys.py), and the server checks both the order and the
     * bytes on sample keys at start ({@link #checkKeyOrder}), serializing everything if that ever fails.
     */
    static final class KeyOrder extends ObjectDataType {

        /** Not decidable in place: compare serialized. */
        static final int UNDECIDED = Integer.MIN_VALUE;

        static volatile boolean enabled = true;

        @Override
        public int compare(Object a, Object b) {
            if (enabled && a != b && a instanceof KeyValue ka && b instanceof KeyValue kb) {
                int inPlace = inPlace(ka, kb);
                if (inPlace != UNDECIDED) {
                    return inPlace;
                }
            }
            return super.compare(a, b);
        }

        static int inPlace(KeyValue a, KeyValue b) {
            String sa = plain(a);
            String sb = sa == null ? null : plain(b);
            if (sb == null) {
                return UNDECIDED;
            }
            int la = sa.length();
            int lb = sb.length();
            if (la != lb) {
                return la < lb ? -1 : 1;
            }
            return Integer.signum(sa.compareTo(sb));  // chars 1..127: a char's order is its byte's
        }

        /** The key's one String when it is a plain one (ASCII, no NUL, under 65,536 characters), else null. */
        static String plain(Object key) {
            if (!(key instanceof KeyValue k) || k.size() != 1 || !(k.get(0) instanceof String s) || s.length() > 0xFFFF
                    || !plainAscii(s)) {
                return null;
            }
            return s;
        }

        /** What ObjectDataType.serialize gives for a plain key: the same bytes, built without a stream. */
        static byte[] serialized(String plain) {
            int n = plain.length();
            byte[] out = new byte[PREFIX.length + 3 + n + SUFFIX.length];
            System.arraycopy(PREFIX, 0, out, 0, PREFIX.length);
            int at = PREFIX.length;
            out[at] = 0x74;  // TC_STRING
            out[at + 1] = (byte) (n >>> 8);
            out[at + 2] = (byte) n;
            for (int i = 0; i < n; i++) {
                out[at + 3 + i] = (byte) plain.charAt(i);  // ASCII: one byte a char
            }
            System.arraycopy(SUFFIX, 0, out, at + 3 + n, SUFFIX.length);
            return out;
        }

        // the bytes around a plain key's string in its serialized form, from a serialized sample
        private static final String MARKER = "txnmon-key-marker";
        private static final byte[] PREFIX;
        private static final byte[] SUFFIX;

        static {
            byte[] sample = ObjectDataType.serialize(new KeyValue(MARKER));
            byte[] string = new byte[3 + MARKER.length()];  // TC_STRING, the length (two bytes), the characters
            string[0] = 0x74;
            string[2] = (byte) MARKER.length();
            for (int i = 0; i < MARKER.length(); i++) {
                string[3 + i] = (byte) MARKER.charAt(i);
            }
            int at = -1;
            for (int i = 0; at < 0 && i + string.length <= sample.length; i++) {
                if (java.util.Arrays.equals(sample, i, i + string.length, string, 0, string.length)) {
                    at = i;
                }
            }
            PREFIX = at < 0 ? new byte[0] : java.util.Arrays.copyOfRange(sample, 0, at);
            SUFFIX = at < 0 ? new byte[0] : java.util.Arrays.copyOfRange(sample, at + string.length, sample.length);
            if (at < 0) {
                enabled = false;  // (checkKeyOrder says so)
            }
        }

        /** As ObjectDataType writes a serialized object (SerializedObjectType.write): its tag, length and bytes. */
        @Override
        public void write(WriteBuffer buff, Object obj) {
            String plain = enabled ? plain(obj) : null;
            if (plain == null) {
                super.write(buff, obj);
                return;
            }
            byte[] data = serialized(plain);
            buff.put((byte) TYPE_SERIALIZED).putVarInt(data.length).put(data);
        }

        /** What SerializedObjectType estimates once its running average settles: twice the serialized length. */
        @Override
        public int getMemory(Object obj) {
            String plain = enabled ? plain(obj) : null;
            return plain == null ? super.getMemory(obj) : 2 * (PREFIX.length + 3 + plain.length() + SUFFIX.length);
        }

        /** ObjectDataType.TYPE_SERIALIZED_OBJECT (package-private there). */
        static final int TYPE_SERIALIZED = 19;

        private static boolean plainAscii(String s) {
            for (int i = 0, n = s.length(); i < n; i++) {
                char c = s.charAt(i);
                if (c == 0 || c > 0x7F) {
                    return false;
                }
            }
            return true;
        }
    }

    /**
     * Whether {@link KeyOrder} orders sample keys exactly as serializing them does (and keys read back from their
     * serialized form too): ASCII ids of lengths around the one- and two-byte length boundaries, the same ids
     * differing in one character, and the keys it leaves to serializing (non-ASCII, a NUL, two values, a number).
     * Null when it does, else what differs: a mongo-java-server or JDK whose serialized form changed.
     */
    static String checkKeyOrder() {
        List<String> texts = new ArrayList<>(List.of("", "a", "b", "T0000001", "T0000002", "T000001", "t0000001",
            "~", "Zürich", "a\u0000b", "\uD83D\uDE00", "café-123"));
        for (int n : new int[] {127, 128, 255, 256, 257, 1000}) {
            texts.add("x".repeat(n));
            texts.add("x".repeat(n - 1) + "y");
        }
        List<KeyValue> keys = new ArrayList<>();
        for (String t : texts) {
            keys.add(new KeyValue(t));
            keys.add((KeyValue) ObjectDataType.deserialize(ObjectDataType.serialize(new KeyValue(t))));
        }
        keys.add(new KeyValue("T1", "T2"));
        keys.add(new KeyValue(42L));
        if (!KeyOrder.enabled) {
            return "no plain key in a serialized sample";
        }
        for (KeyValue key : keys) {
            String plain = KeyOrder.plain(key);
            if (plain != null && !java.util.Arrays.equals(KeyOrder.serialized(plain), ObjectDataType.serialize(key))) {
                return key + " serialized otherwise";
            }
        }
        KeyOrder order = new KeyOrder();
        for (KeyValue a : keys) {
            for (KeyValue b : keys) {
                int serialized = Integer.signum(ObjectDataType.compareNotNull(ObjectDataType.serialize(a),
                    ObjectDataType.serialize(b)));
                if (Integer.signum(order.compare(a, b)) != serialized) {
                    return a + " against " + b;
                }
            }
        }
        return null;
    }

    /** H2Database whose unique indexes' maps are opened with {@link KeyOrder} (the map H2Database then opens by
     * name is this one: MVStore.openMap returns a map already open). */
    static final class KeyOrderedH2Database extends H2Database {

        /** The server's one store. H2Database's constructor opens the stored indexes (the method below) before a
         * field of this class could be set, so it is read from here. */
        static volatile MVStore store;

        KeyOrderedH2Database(String databaseName, MVStore store, de.bwaldvogel.mongo.backend.CursorRegistry cursors) {
            super(databaseName, store, cursors);
        }

        @Override
        protected Index<Object> openOrCreateUniqueIndex(String collectionName, String indexName, List<IndexKey> keys,
                                                        boolean sparse) {
            // the name H2Database gives the map (H2Database.mapNameForIndex)
            String mapName = getFullCollectionNamespace(collectionName) + "._index_" + indexName;
            MVMap<KeyValue, Object> map = store.openMap(mapName,
                new MVMap.Builder<KeyValue, Object>().keyType(new KeyOrder()).valueType(new ObjectDataType()));
            if (!((Object) map.getKeyType() instanceof KeyOrder)) {
                System.err.println("txnmon mongo-wire server: index " + mapName + " was open already; its keys are"
                    + " compared serialized");
            }
            return super.openOrCreateUniqueIndex(collectionName, indexName, keys, sparse);
        }
    }

    /**
     * Keeps the file compact, as H2's background writer did (FileStore.doHousekeeping) before auto-commit was
     * disabled. Every acknowledged write is its own commit, i.e. its own chunk, and H2 keeps a chunk that no
     * longer holds live data for its retention time (45 s) before reusing its space: a burst of small writes
     * leaves a large, sparsely used file behind. Both calls are H2's own housekeeping operations; each takes the
     * store lock and commits, which changes nothing about what is durable.
     */
    static void housekeeping(MVStore store) {
        try {
            if (store.isClosed()) {
                return;
            }
            // rewrite the live pages of mostly dead chunks into a new chunk, so the old chunks can be freed
            long started = System.nanoTime();
            if (store.compact(CHUNK_TARGET_FILL_RATE, MAINTENANCE_MAX_WRITE_BYTES)) {
                store.commit();
            }
            long ms = (System.nanoTime() - started) / 1_000_000;
            if (ms > SLOW_ROUND_MS) {
                System.err.println(java.time.Instant.now() + " txnmon mongo-wire server: MVStore housekeeping held the store for "
                    + ms + " ms");
            }
            // (Moving chunks to truncate the file is left to a restart: done while readers run, it made
            // a concurrent count fail once with an internal error. The file may stay larger until then.)
        } catch (RuntimeException e) {
            if (!store.isClosed()) {
                System.err.println("txnmon mongo-wire server: MVStore housekeeping failed: " + e);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: TxnmonMongoServer HOST PORT DATA_FILE");
            System.exit(2);
        }
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        String dataFile = args[2];

        // The page cache of the MVStore (default 16 MB): every filtered query here is a full scan, and a
        // collection larger than the cache is read back from the file and decoded on each one. H2 sizes a
        // cached document at twice its serialized length, about 3.4 KB for a stored transaction, so 2M
        // of them need 6.8 GB of cache by its count (5.7 GB of heap in fact, with the string deduplication
        // that devstack/stack.py turns on). The cache grows only with the data read. By default it is two
        // thirds of the heap (8 GB of the default 12), so a smaller heap (DEVSTACK_MONGO_HEAP) never holds
        // a cache bigger than itself.
        long twoThirdsOfHeapMb = Runtime.getRuntime().maxMemory() / (1024L * 1024L) * 2 / 3;
        String cacheSetting = System.getenv("DEVSTACK_MONGO_CACHE_MB");
        int cacheMb = cacheSetting != null ? Integer.parseInt(cacheSetting) : (int) Math.max(16, twoThirdsOfHeapMb);
        MVStore store = new MVStore.Builder().fileName(dataFile).autoCommitDisabled().cacheSize(cacheMb).open();
        // unique-index keys compared in place (KeyOrder) unless DEVSTACK_MONGO_KEYS_IN_PLACE=0 or the check fails
        String differs = checkKeyOrder();
        boolean keysInPlace = !"0".equals(System.getenv("DEVSTACK_MONGO_KEYS_IN_PLACE")) && differs == null;
        if (differs != null) {
            System.err.println("txnmon mongo-wire server: unique-index keys compared in place would order " + differs
                + " otherwise than serialized: every key is compared serialized");
        }
        DurableH2Backend backend = DurableH2Backend.open(store, keysInPlace);
        backend.version(MONGO_4_4);
        MongoServer server = new MongoServer(backend);

        ScheduledExecutorService maintenance = Executors.newSingleThreadScheduledExecutor(task -> {
            Thread thread = new Thread(task, "txnmon-mvstore-maintenance");
            thread.setDaemon(true);
            return thread;
        });
        // seconds between rounds; 0: none (the file then grows until a restart). Each round rewrites at most
        // MAINTENANCE_MAX_WRITE_BYTES, so rounds further apart also keep the file less compact.
        String periodSetting = System.getenv("DEVSTACK_MONGO_HOUSEKEEPING_S");
        int period = periodSetting == null || periodSetting.isBlank() ? MAINTENANCE_PERIOD_S
            : Integer.parseInt(periodSetting.trim());
        if (period > 0) {
            maintenance.scheduleWithFixedDelay(() -> housekeeping(store), period, period, TimeUnit.SECONDS);
        }

        CountDownLatch stopped = new CountDownLatch(1);
        // SIGTERM (make down) closes the store cleanly: shutdown() closes the backend, which commits and
        // closes the MVStore (every acknowledged write is already in the file; this only tidies it up).
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            // let a housekeeping round finish: interrupting H2 in the middle of file I/O closes the file
            maintenance.shutdown();
            try {
                maintenance.awaitTermination(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            server.shutdown();
            stopped.countDown();
        }, "txnmon-mongo-shutdown"));
        server.bind(host, port);
        System.out.println("txnmon mongo-wire server listening on " + host + ":" + port + ", data in " + dataFile
            + " (committed before every write is acknowledged; unique-index keys compared "
            + (keysInPlace ? "in place" : "serialized") + ")");
        stopped.await();
    }
}
