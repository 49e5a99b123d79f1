import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;
import org.h2.mvstore.MVStore;

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

        DurableH2Backend(MVStore store) {
            super(store);
            this.store = store;
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
        DurableH2Backend backend = new DurableH2Backend(store);
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
            + " (committed before every write is acknowledged)");
        stopped.await();
    }
}
