package io.gradshape.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.gradshape.io.Npy;
import io.gradshape.io.NpyArray;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link OutputDir}: results appear all together or not at all, whichever write or move fails. */
class OutputDirTest {
    private static final String[] NAMES = {"nmi.npy", "S.npy", "G.npy"};

    @TempDir
    Path tmp;

    private static NpyArray array(float v) {
        return NpyArray.of(new float[] {v, v, v}, 3);
    }

    private static PrintStream sink(ByteArrayOutputStream bytes) {
        return new PrintStream(bytes, true, StandardCharsets.UTF_8);
    }

    /** Adds the three results; the {@code failAt}-th write (1-based) throws, 0 for none. */
    private static OutputDir addAll(OutputDir out, float v, int failAt) {
        AtomicInteger writes = new AtomicInteger();
        for (String name : NAMES) {
            out.add(name, "float32 (3,)", file -> {
                if (writes.incrementAndGet() == failAt) {
                    throw new IOException(file + ": No space left on device");
                }
                Npy.write(file, array(v));
            });
        }
        return out;
    }

    /** A mover that fails at its {@code failAt}-th call. */
    private static OutputDir.Mover failingAt(int failAt, AtomicInteger calls) {
        return (from, to) -> {
            if (calls.incrementAndGet() == failAt) {
                throw new FileSystemException(to.toString(), null, "injected failure of move " + failAt);
            }
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
        };
    }

    private void writeOld(Path dir) throws IOException {
        Files.createDirectories(dir);
        for (String name : NAMES) {
            Npy.write(dir.resolve(name), array(1));
        }
        Files.writeString(dir.resolve("notes.txt"), "the user's own file");
    }

    private void assertOld(Path dir, String why) throws IOException {
        assertEquals(List.of("G.npy", "S.npy", "nmi.npy", "notes.txt"), CliHelpersTest.list(dir), why);
        for (String name : NAMES) {
            assertArrayEquals(new float[] {1, 1, 1}, Npy.read(dir.resolve(name)).floats(), why + ": " + name);
        }
    }

    @Test
    void aFailedWriteLeavesAMissingDirMissing() throws IOException {
        for (int failAt = 1; failAt <= 3; failAt++) {
            Path dir = tmp.resolve("new" + failAt).resolve("a/b");
            OutputDir out = addAll(OutputDir.prepare(dir, NAMES), 2, failAt);
            ByteArrayOutputStream log = new ByteArrayOutputStream();
            IOException e = assertThrows(IOException.class, () -> out.commit(sink(log)));
            assertTrue(e.getMessage().contains("No space left on device"), e.getMessage());
            assertFalse(Files.exists(tmp.resolve("new" + failAt)), "created parents removed again, write " + failAt);
            assertEquals("", log.toString(StandardCharsets.UTF_8), "nothing reported as written");
        }
    }

    @Test
    void aFailedWriteLeavesAnExistingDirAsItWas() throws IOException {
        for (int failAt = 1; failAt <= 3; failAt++) {
            Path dir = tmp.resolve("old" + failAt);
            writeOld(dir);
            OutputDir out = addAll(OutputDir.prepare(dir, NAMES), 2, failAt);
            assertThrows(IOException.class, () -> out.commit(sink(new ByteArrayOutputStream())));
            assertOld(dir, "write " + failAt + " failed");
        }
    }

    @Test
    void aFailedMoveIsRolledBack() throws IOException {
        // An existing DIR takes 6 moves (3 old results aside, 3 new in): fail each in turn.
        for (int failAt = 1; failAt <= 6; failAt++) {
            Path dir = tmp.resolve("move" + failAt);
            writeOld(dir);
            AtomicInteger calls = new AtomicInteger();
            OutputDir out = addAll(OutputDir.prepare(dir, failingAt(failAt, calls), NAMES), 2, 0);
            FileSystemException e = assertThrows(FileSystemException.class, () -> out.commit(sink(new ByteArrayOutputStream())));
            assertTrue(e.getMessage().contains("injected failure of move " + failAt), e.getMessage());
            assertOld(dir, "move " + failAt + " failed");
        }
        // A missing DIR appears with one move, of the whole staging folder.
        Path dir = tmp.resolve("fresh");
        OutputDir out = addAll(OutputDir.prepare(dir, failingAt(1, new AtomicInteger()), NAMES), 2, 0);
        assertThrows(FileSystemException.class, () -> out.commit(sink(new ByteArrayOutputStream())));
        assertEquals(List.of("move1", "move2", "move3", "move4", "move5", "move6"), CliHelpersTest.list(tmp));
    }

    @Test
    void aCommitReplacesTheResultsRemovesStaleOnesAndKeepsOtherFiles() throws IOException {
        Path dir = tmp.resolve("dir");
        writeOld(dir);
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        OutputDir.prepare(dir, NAMES).add("nmi.npy", array(3)).add("S.npy", array(3)).commit(sink(log));
        assertEquals(List.of("S.npy", "nmi.npy", "notes.txt"), CliHelpersTest.list(dir));
        assertArrayEquals(new float[] {3, 3, 3}, Npy.read(dir.resolve("S.npy")).floats());
        assertEquals("wrote " + dir.resolve("nmi.npy") + ": float32 (3,)\n" + "wrote " + dir.resolve("S.npy") + ": float32 (3,)\n"
                + "removed " + dir.resolve("G.npy") + " (from an earlier run; this one does not write it)\n",
                log.toString(StandardCharsets.UTF_8));
    }

    @Test
    void aLinkIsReplacedNotWrittenThrough() throws IOException {
        Path dir = tmp.resolve("dir");
        Files.createDirectories(dir);
        Path elsewhere = Files.writeString(tmp.resolve("elsewhere.txt"), "keep me");
        Files.createSymbolicLink(dir.resolve("G.npy"), elsewhere);
        OutputDir.prepare(dir, NAMES).add("G.npy", array(4)).commit(sink(new ByteArrayOutputStream()));
        assertFalse(Files.isSymbolicLink(dir.resolve("G.npy")));
        assertArrayEquals(new float[] {4, 4, 4}, Npy.read(dir.resolve("G.npy")).floats());
        assertEquals("keep me", Files.readString(elsewhere));
    }

    @Test
    void anOutputNameTakenByAFolderIsRefusedBeforeAnyWork() throws IOException {
        Path dir = tmp.resolve("dir");
        writeOld(dir);
        Files.delete(dir.resolve("G.npy"));
        Files.createDirectories(dir.resolve("G.npy/inside"));
        FileSystemException e = assertThrows(FileSystemException.class, () -> OutputDir.prepare(dir, NAMES));
        assertEquals(dir.resolve("G.npy") + ": exists and is not a regular file; it is not replaced", Main.message(e));
        assertTrue(Files.isDirectory(dir.resolve("G.npy/inside")));
    }
}
