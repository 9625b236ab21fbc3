package circuitatlas.ci;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.cli.ExecutionContext;
import org.neo4j.commandline.admin.security.SetInitialPasswordCommand;
import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.ConnectorPortRegister;
import org.neo4j.configuration.connectors.ConnectorType;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.kernel.internal.GraphDatabaseAPI;

import picocli.CommandLine;

/**
 * Runs Neo4j Community embedded with one Bolt connector on 127.0.0.1, for CI and local tests.
 *
 * <p>Usage: {@code java -jar neo4j-launcher.jar HOME}, with the password of user {@code neo4j}
 * as the first line on standard input (not argv or the environment, so it never shows in ps
 * or /proc/PID/environ). Normally started by the {@code ctl} script beside the pom.
 *
 * <p>Environment (all optional): NEO4J_BOLT_PORT (default 0 = any free port; the real one is
 * printed), NEO4J_PAGECACHE (bytes with unit, default 1g).
 *
 * <p>Prints exactly one line {@code READY bolt://127.0.0.1:PORT pid=PID} to stdout once Bolt accepts
 * the new password; on SIGTERM it shuts Neo4j down cleanly and prints {@code STOPPED}.
 */
public final class Launcher {

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: java -jar neo4j-launcher.jar HOME  (password on stdin)");
            System.exit(2);
        }
        Path home = Path.of(args[0]).toAbsolutePath();
        String password = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8)).readLine();
        if (password == null || password.length() < 8) {
            System.err.println("launcher: expected a password of at least 8 characters on stdin");
            System.exit(2);
        }
        int port = Integer.parseInt(System.getenv().getOrDefault("NEO4J_BOLT_PORT", "0"));
        String pagecache = System.getenv().getOrDefault("NEO4J_PAGECACHE", "1g");

        // A home whose system database does not exist yet gets its password the way
        // `neo4j-admin dbms set-initial-password` does it (data/dbms/auth.ini, read once when
        // the system database is created), so Bolt never accepts the default neo4j/neo4j.
        boolean fresh = !Files.exists(home.resolve("data/databases/system"));
        if (fresh) {
            int rc = new CommandLine(new SetInitialPasswordCommand(new ExecutionContext(home, home.resolve("conf"))))
                    .execute("--", password);  // "--": a password may start with "-"
            if (rc != 0) {
                System.err.println("launcher: set-initial-password failed (exit " + rc + ")");
                System.exit(1);
            }
        }

        // Transaction memory limits relative to the heap (-Xmx in ctl): one runaway query fails
        // with a MemoryLimitExceeded error instead of taking the JVM down with it.
        long heap = Runtime.getRuntime().maxMemory();
        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(BoltConnector.enabled, true)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
                .setConfig(HttpConnector.enabled, false)
                .setConfig(GraphDatabaseSettings.auth_enabled, true)
                .setConfig(GraphDatabaseSettings.pagecache_memory, parseBytes(pagecache))
                .setConfig(GraphDatabaseSettings.memory_transaction_global_max_size, heap * 7 / 10)
                .setConfig(GraphDatabaseSettings.memory_transaction_max_size, heap / 2)
                // Same as docker-compose.yml, so tests see production's timeout.
                .setConfig(GraphDatabaseSettings.transaction_timeout, Duration.ofMinutes(10))
                // No "anonymous usage data" calls home: tests must only talk to 127.0.0.1.
                .setConfig(GraphDatabaseSettings.udc_enabled, false)
                // Netty waits a 5 s quiet period per Bolt event-loop group (two of them) on
                // shutdown; the databases are already checkpointed by then, so skip it.
                .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
                // A throwaway server keeps no transaction-log history: by default Neo4j keeps two
                // days of 256 MiB preallocated log files, several GB over one test run, which
                // filled a CI machine's disk. Small unpreallocated files, pruned at checkpoints
                // (every 30 s or 64 MiB of log), keep the whole server to a few hundred MB.
                .setConfig(GraphDatabaseSettings.keep_logical_logs, "false")
                .setConfig(GraphDatabaseSettings.preallocate_logical_logs, false)
                .setConfig(GraphDatabaseSettings.logical_log_rotation_threshold, 32L << 20)
                .setConfig(GraphDatabaseSettings.check_point_interval_time, Duration.ofSeconds(30))
                .setConfig(GraphDatabaseSettings.check_point_interval_volume, 64L << 20)
                .build();

        // Registered right after build() so a SIGTERM at any later point still shuts down cleanly
        // (store files flushed, no recovery on the next start).
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            dbms.shutdown();
            System.out.println("STOPPED");
            System.out.flush();
            stopped.countDown();
        }, "neo4j-shutdown"));

        GraphDatabaseAPI system = (GraphDatabaseAPI) dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME);
        if (!fresh) {
            // Existing data keeps its old password: replace it with this start's one. The
            // embedded API runs with full rights, so no current password is needed.
            system.executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $pw CHANGE NOT REQUIRED", Map.of("pw", password));
        }

        int boltPort = system.getDependencyResolver()
                .resolveDependency(ConnectorPortRegister.class)
                .getLocalAddress(ConnectorType.BOLT)
                .getPort();
        // The initial-password file has done its job; don't leave the hash lying around.
        Files.deleteIfExists(home.resolve("data/dbms/auth.ini"));

        System.out.println("READY bolt://127.0.0.1:" + boltPort + " pid=" + ProcessHandle.current().pid());
        System.out.flush();

        stopped.await(); // the shutdown hook releases this; until then keep the JVM alive
    }

    /** "512m", "1g", "1536k", "2048" (bytes) -> bytes. */
    private static long parseBytes(String s) {
        String t = s.trim().toLowerCase();
        long mult = switch (t.charAt(t.length() - 1)) {
            case 'k' -> 1L << 10;
            case 'm' -> 1L << 20;
            case 'g' -> 1L << 30;
            default -> 1L;
        };
        String digits = mult == 1L ? t : t.substring(0, t.length() - 1);
        return Long.parseLong(digits) * mult;
    }
}
