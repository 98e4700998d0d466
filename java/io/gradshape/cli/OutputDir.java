package io.gradshape.cli;

import io.gradshape.io.Npy;
import io.gradshape.io.NpyArray;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.DirectoryStream;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The {@code --out DIR} of a command, written all or nothing. {@link #prepare} checks DIR before any
 * work (so a command with an unusable DIR fails before it reads or computes); {@link #add} collects the
 * results; {@link #commit} writes them into a hidden staging folder on DIR's file system and then moves
 * them into place, so that a failure at any point leaves DIR as it was: never new {@code nmi.npy} and
 * {@code S.npy} beside an old {@code G.npy}. A DIR that did not exist appears whole (one rename of the
 * staging folder); in an existing DIR the old results are moved aside first and put back if a move
 * fails. The files the command may write that this run does not (sgd-step's {@code momentum.npy}
 * without momentum) are removed in the same step: they would not belong to the new results.
 */
public final class OutputDir {
    /** How files and folders are renamed; a seam so that tests can make the n-th move fail. */
    @FunctionalInterface
    interface Mover {
        void move(Path from, Path to) throws IOException;
    }

    /** Writes one output into a file. */
    @FunctionalInterface
    interface Writer {
        void write(Path file) throws IOException;
    }

    private static final String STAGING_PREFIX = ".gradshape-staging-";

    private final Path dir;
    private final Set<String> owned;
    private final Map<String, Writer> outputs = new LinkedHashMap<>();
    private final Map<String, String> descriptions = new LinkedHashMap<>();
    private final Mover mover;
    private boolean committed;

    private OutputDir(Path dir, Set<String> owned, Mover mover) {
        this.dir = dir;
        this.owned = owned;
        this.mover = mover;
    }

    /**
     * Checks that results can go to {@code dir}: an existing one must be a folder, and every file the
     * command may write that is there already a regular file (or a link), which the results replace; a
     * missing one is created by {@link #commit}, so its nearest existing ancestor must be a folder.
     *
     * @param fileNames every file the command may write, e.g. {@code "weights.npy", "momentum.npy"}
     * @throws NotDirectoryException when {@code dir} or an ancestor is not a folder
     * @throws FileSystemException when an output name is taken by a folder or a special file
     */
    public static OutputDir prepare(Path dir, String... fileNames) throws IOException {
        return prepare(dir, (from, to) -> Files.move(from, to, StandardCopyOption.ATOMIC_MOVE), fileNames);
    }

    static OutputDir prepare(Path dir, Mover mover, String... fileNames) throws IOException {
        Objects.requireNonNull(dir, "dir");
        OutputDir out = new OutputDir(dir, Set.of(fileNames), mover);
        out.check();
        return out;
    }

    public Path dir() {
        return dir;
    }

    /** Adds {@code array} as {@code DIR/fileName}, one of the names given to {@link #prepare}; nothing is written yet. */
    public OutputDir add(String fileName, NpyArray array) {
        Objects.requireNonNull(array, "array");
        return add(fileName, array.toString(), file -> Npy.write(file, array));
    }

    OutputDir add(String fileName, String description, Writer writer) {
        if (!owned.contains(fileName)) {
            throw new IllegalArgumentException("fileName: '" + fileName + "' is not one of " + owned);
        }
        if (committed) {
            throw new IllegalStateException("already committed");
        }
        outputs.put(fileName, writer);
        descriptions.put(fileName, description);
        return this;
    }

    /**
     * Writes every added output and moves them into DIR together; {@code log} then gets one line per
     * file, {@code "wrote DIR/G.npy: float32 (3, 3)"}, and one per stale output removed. On failure
     * nothing in DIR has changed (a DIR that was missing is still missing) and the exception says why.
     *
     * @return the files written
     */
    public List<Path> commit(PrintStream log) throws IOException {
        Objects.requireNonNull(log, "log");
        if (committed) {
            throw new IllegalStateException("already committed");
        }
        committed = true;
        check(); // again: DIR may have changed while the command computed
        Path target = dir.toAbsolutePath().normalize();
        boolean existed = Files.isDirectory(target);
        Deque<Path> createdParents = new ArrayDeque<>();
        Path staging = null;
        List<String> removed = new ArrayList<>();
        try {
            Path parent = target.getParent();
            if (!existed) {
                createParents(parent, createdParents);
            }
            // Staged on DIR's own file system (inside it, or beside it when it does not exist yet): the
            // moves below are renames, which either happen whole or not at all.
            try {
                staging = createStaging(existed ? target : parent,
                        existed ? STAGING_PREFIX : "." + target.getFileName() + STAGING_PREFIX);
            } catch (FileSystemException e) {
                // The staging folder is ours: name the folder the user gave, and why it cannot be written.
                String why = e.getReason() != null ? e.getReason()
                        : e instanceof java.nio.file.AccessDeniedException ? "permission denied"
                        : e instanceof java.nio.file.NoSuchFileException ? "no folder can be created there"
                        : e.getClass().getSimpleName();
                throw new FileSystemException(dir.toString(), null, "cannot write results here (" + why + ")");
            }
            Path files = existed ? Files.createDirectory(staging.resolve("new")) : staging;
            for (Map.Entry<String, Writer> e : outputs.entrySet()) {
                e.getValue().write(files.resolve(e.getKey()));
            }
            if (existed) {
                replaceIn(target, staging, files, removed);
            } else {
                mover.move(staging, target);
                staging = null;
            }
        } catch (IOException | RuntimeException | Error e) {
            if (staging != null) {
                deleteQuietly(staging, e);
            }
            while (!createdParents.isEmpty()) {
                // not recursive: a folder we created holds nothing else unless someone else wrote there since
                undo(() -> Files.deleteIfExists(createdParents.pop()), e);
            }
            throw e;
        }
        if (staging != null) {
            deleteQuietly(staging, null);
        }
        List<Path> written = new ArrayList<>();
        for (String name : outputs.keySet()) {
            Path file = dir.resolve(name);
            written.add(file);
            log.println("wrote " + file + ": " + descriptions.get(name));
        }
        for (String name : removed) {
            log.println("removed " + dir.resolve(name) + " (from an earlier run; this one does not write it)");
        }
        return written;
    }

    /**
     * Moves the old outputs of {@code target} aside into {@code staging/old}, the new ones in, and
     * puts everything back if a move fails.
     */
    private void replaceIn(Path target, Path staging, Path files, List<String> removed) throws IOException {
        Path old = Files.createDirectory(staging.resolve("old"));
        List<String> movedAside = new ArrayList<>();
        List<String> movedIn = new ArrayList<>();
        try {
            for (String name : owned) {
                if (Files.exists(target.resolve(name), LinkOption.NOFOLLOW_LINKS)) {
                    mover.move(target.resolve(name), old.resolve(name));
                    movedAside.add(name);
                }
            }
            for (String name : outputs.keySet()) {
                mover.move(files.resolve(name), target.resolve(name));
                movedIn.add(name);
            }
        } catch (IOException | RuntimeException | Error e) {
            for (String name : movedIn) {
                undo(() -> mover.move(target.resolve(name), files.resolve(name)), e);
            }
            for (String name : movedAside) {
                undo(() -> mover.move(old.resolve(name), target.resolve(name)), e);
            }
            throw e;
        }
        for (String name : movedAside) {
            if (!outputs.containsKey(name)) {
                removed.add(name);
            }
        }
    }

    private void check() throws IOException {
        if (Files.exists(dir)) {
            if (!Files.isDirectory(dir)) {
                throw new NotDirectoryException(dir.toString());
            }
            for (String name : owned) {
                Path file = dir.resolve(name);
                if (Files.exists(file, LinkOption.NOFOLLOW_LINKS) && !Files.isSymbolicLink(file)
                        && !Files.isRegularFile(file, LinkOption.NOFOLLOW_LINKS)) {
                    throw new FileSystemException(file.toString(), null, "exists and is not a regular file; it is not replaced");
                }
            }
            return;
        }
        Path ancestor = dir.toAbsolutePath().normalize().getParent();
        while (ancestor != null && !Files.exists(ancestor)) {
            ancestor = ancestor.getParent();
        }
        if (ancestor != null && !Files.isDirectory(ancestor)) {
            throw new NotDirectoryException(ancestor.toString());
        }
    }

    private static void createParents(Path parent, Deque<Path> created) throws IOException {
        List<Path> missing = new ArrayList<>();
        for (Path p = parent; p != null && !Files.exists(p); p = p.getParent()) {
            missing.add(p);
        }
        for (int i = missing.size() - 1; i >= 0; i--) {
            created.push(Files.createDirectory(missing.get(i)));
        }
    }

    /** A new, empty folder {@code in/PREFIX<random>} (created with the default permissions, as DIR would be). */
    private static Path createStaging(Path in, String prefix) throws IOException {
        for (int attempt = 0; ; attempt++) {
            Path p = in.resolve(prefix + Long.toHexString(ThreadLocalRandom.current().nextLong() & Long.MAX_VALUE));
            try {
                return Files.createDirectory(p);
            } catch (java.nio.file.FileAlreadyExistsException e) {
                if (attempt == 10) {
                    throw e;
                }
            }
        }
    }

    @FunctionalInterface
    private interface Undo {
        void run() throws IOException;
    }

    private static void undo(Undo step, Throwable failure) {
        try {
            step.run();
        } catch (IOException | RuntimeException e) {
            failure.addSuppressed(e);
        }
    }

    /** Deletes {@code path} and what it holds; a failure is added to {@code failure} (when there is one) and otherwise ignored. */
    private static void deleteQuietly(Path path, Throwable failure) {
        try {
            if (Files.isDirectory(path, LinkOption.NOFOLLOW_LINKS)) {
                try (DirectoryStream<Path> entries = Files.newDirectoryStream(path)) {
                    for (Path e : entries) {
                        deleteQuietly(e, failure);
                    }
                }
            }
            Files.deleteIfExists(path);
        } catch (IOException | RuntimeException e) {
            if (failure != null) {
                failure.addSuppressed(e);
            }
        }
    }
}
