import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.h2.H2Backend;

import java.util.List;
import java.util.concurrent.CountDownLatch;

/**
 * Local MongoDB-wire server for txnmon's dev stack: mongo-java-server with its H2 (on-disk) backend.
 *
 * Usage: java -cp 'lib/*' TxnmonMongoServer.java HOST PORT DATA_FILE
 *
 * mongo-java-server reports wire version 8 (MongoDB 4.2) by default; pymongo 4.16+ refuses
 * anything below 9, so the backend is told to announce MongoDB 4.4 (wire version 9), the oldest
 * version current drivers accept. The feature set is unchanged: only the handshake differs.
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

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: TxnmonMongoServer HOST PORT DATA_FILE");
            System.exit(2);
        }
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        String dataFile = args[2];

        H2Backend backend = new H2Backend(dataFile);
        backend.version(MONGO_4_4);
        MongoServer server = new MongoServer(backend);
        CountDownLatch stopped = new CountDownLatch(1);
        // SIGTERM (make down) must flush the MVStore, or the last second of writes is lost:
        // shutdown() closes the backend, which commits and closes the store.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdown();
            stopped.countDown();
        }, "txnmon-mongo-shutdown"));
        server.bind(host, port);
        System.out.println("txnmon mongo-wire server listening on " + host + ":" + port + ", data in " + dataFile);
        stopped.await();
    }
}
