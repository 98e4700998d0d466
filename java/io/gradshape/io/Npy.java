package io.gradshape.io;

import io.gradshape.DType;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Reads and writes NumPy {@code .npy} files (format versions 1.0, 2.0 and 3.0), so that tensors can
 * travel between gradshape and NumPy/PyTorch ({@code np.save(path, t.numpy())}).
 *
 * <p>Supported: element types float32, float64, int32 and int64, little-endian, C order, any rank
 * (0 is a scalar). Anything else — Fortran order, big-endian, other element types (bool, float16,
 * strings, objects, structured), a truncated file or one whose size does not match its shape, a bad
 * magic string or a malformed header — is a {@link NpyFormatException} whose message names the file
 * and says what to do.
 *
 * <p>Data goes straight from the file into the destination array through a small reusable buffer:
 * a large file is never held twice in memory. Files are written in version 1.0 (2.0 only when the
 * header needs it), byte for byte as {@code numpy.save} writes them.
 *
 * <p>Format: <a href="https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html">numpy.lib.format</a>.
 */
public final class Npy {
    /** The most elements one array may hold (the largest Java array the JVM reliably allocates). */
    public static final int MAX_ELEMENTS = Integer.MAX_VALUE - 8;

    private static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    /** NumPy pads headers so that the data starts on a multiple of this (older files: 16; any is read). */
    private static final int ALIGN = 64;
    /** NumPy leaves room to rewrite the first dimension in place: repr(shape[0]) padded to this many digits. */
    private static final int GROWTH_AXIS_MAX_DIGITS = 21;
    /** A header longer than this is not from NumPy (which refuses 10 000+ characters by default). */
    private static final int MAX_HEADER_BYTES = 1 << 20;
    private static final int CHUNK_BYTES = 1 << 20;

    private Npy() {}

    /**
     * What a {@code .npy} header says: format version, element type, shape, and where the data starts.
     */
    public record Header(int majorVersion, int minorVersion, DType dtype, int[] shape, long dataOffset) {
        public Header {
            shape = shape.clone();
        }

        @Override
        public int[] shape() {
            return shape.clone();
        }

        /** Number of elements. */
        public int size() {
            return NpyArray.checkedSize(shape);
        }
    }

    /**
     * Reads a {@code .npy} file.
     *
     * @throws NpyFormatException when the file is not a supported {@code .npy} file (message names it)
     * @throws java.nio.file.NoSuchFileException when it does not exist
     * @throws IOException for any other failure to read
     */
    public static NpyArray read(Path file) throws IOException {
        try (FileChannel channel = open(file)) {
            Header header = readHeader(file, channel);
            NpyArray array = NpyArray.zeros(header.dtype(), header.shape());
            ElementSink sink = switch (header.dtype()) {
                case FLOAT32 -> (b, at, n) -> b.asFloatBuffer().get(array.floats(), at, n);
                case FLOAT64 -> (b, at, n) -> b.asDoubleBuffer().get(array.doubles(), at, n);
                case INT32 -> (b, at, n) -> b.asIntBuffer().get(array.ints(), at, n);
                case INT64 -> (b, at, n) -> b.asLongBuffer().get(array.longs(), at, n);
            };
            readElements(file, channel, header.dataOffset(), array.size(), header.dtype().bytes(), sink);
            return array;
        }
    }

    /**
     * Reads only the header of a {@code .npy} file (to check a shape before reading a large file),
     * validating it and the file size as {@link #read} does.
     */
    public static Header readHeader(Path file) throws IOException {
        try (FileChannel channel = open(file)) {
            return readHeader(file, channel);
        }
    }

    /** Writes {@code array} to {@code file} (created or replaced) as NumPy's {@code np.save} would. */
    public static void write(Path file, NpyArray array) throws IOException {
        Objects.requireNonNull(file, "file");
        Objects.requireNonNull(array, "array");
        byte[] header = header(array.dtype(), array.shape());
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.WRITE, StandardOpenOption.CREATE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            writeFully(channel, ByteBuffer.wrap(header));
            ElementSource source = switch (array.dtype()) {
                case FLOAT32 -> (b, at, n) -> b.asFloatBuffer().put(array.floats(), at, n);
                case FLOAT64 -> (b, at, n) -> b.asDoubleBuffer().put(array.doubles(), at, n);
                case INT32 -> (b, at, n) -> b.asIntBuffer().put(array.ints(), at, n);
                case INT64 -> (b, at, n) -> b.asLongBuffer().put(array.longs(), at, n);
            };
            int itemBytes = array.dtype().bytes();
            int perChunk = CHUNK_BYTES / itemBytes;
            int size = array.size();
            ByteBuffer chunk = chunk(size, itemBytes);
            for (int done = 0; done < size; ) {
                int n = Math.min(size - done, perChunk);
                chunk.clear();
                source.put(chunk, done, n);
                chunk.limit(n * itemBytes);
                writeFully(channel, chunk);
                done += n;
            }
        }
    }

    /** NumPy's name for an element type: float32, float64, int32, int64. */
    public static String dtypeName(DType dtype) {
        return switch (dtype) {
            case FLOAT32 -> "float32";
            case FLOAT64 -> "float64";
            case INT32 -> "int32";
            case INT64 -> "int64";
        };
    }

    /** The array-protocol type string ({@code descr}) written for an element type, e.g. {@code "<f4"}. */
    public static String descr(DType dtype) {
        return switch (dtype) {
            case FLOAT32 -> "<f4";
            case FLOAT64 -> "<f8";
            case INT32 -> "<i4";
            case INT64 -> "<i8";
        };
    }

    // ---- writing ------------------------------------------------------------------------------------

    /** The magic string, version, header length and header dict, padded as NumPy pads them. */
    static byte[] header(DType dtype, int[] shape) {
        StringBuilder dict = new StringBuilder()
                .append("{'descr': '").append(descr(dtype)).append("', 'fortran_order': False, 'shape': ")
                .append(NpyArray.shapeString(shape)).append(", }");
        if (shape.length > 0) {
            dict.append(" ".repeat(GROWTH_AXIS_MAX_DIGITS - Integer.toString(shape[0]).length()));
        }
        int textBytes = dict.length() + 1; // + the final newline
        int major = 1;
        int prefix = MAGIC.length + 2 + 2;
        int padding = ALIGN - (prefix + textBytes) % ALIGN;
        if (textBytes + padding > 0xFFFF) {
            major = 2;
            prefix = MAGIC.length + 2 + 4;
            padding = ALIGN - (prefix + textBytes) % ALIGN;
        }
        int headerLength = textBytes + padding;
        ByteBuffer out = ByteBuffer.allocate(prefix + headerLength).order(ByteOrder.LITTLE_ENDIAN);
        out.put(MAGIC).put((byte) major).put((byte) 0);
        if (major == 1) {
            out.putShort((short) headerLength);
        } else {
            out.putInt(headerLength);
        }
        out.put(dict.toString().getBytes(StandardCharsets.US_ASCII));
        out.put(" ".repeat(padding).getBytes(StandardCharsets.US_ASCII)).put((byte) '\n');
        return out.array();
    }

    /** The staging buffer between a file and an array: at most {@value #CHUNK_BYTES} bytes, reused. */
    private static ByteBuffer chunk(int elements, int itemBytes) {
        long bytes = Math.min(CHUNK_BYTES, Math.max(elements, 1) * (long) itemBytes);
        return ByteBuffer.allocateDirect((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static void writeFully(FileChannel channel, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
    }

    // ---- reading ------------------------------------------------------------------------------------

    @FunctionalInterface
    private interface ElementSink {
        /** Copies {@code n} elements from the (little-endian) buffer into the array at element {@code at}. */
        void get(ByteBuffer buffer, int at, int n);
    }

    @FunctionalInterface
    private interface ElementSource {
        /** Copies {@code n} elements from the array at element {@code at} into the (little-endian) buffer. */
        void put(ByteBuffer buffer, int at, int n);
    }

    private static void readElements(Path file, FileChannel channel, long offset, int size, int itemBytes,
            ElementSink sink) throws IOException {
        int perChunk = CHUNK_BYTES / itemBytes;
        ByteBuffer chunk = chunk(size, itemBytes);
        long position = offset;
        for (int done = 0; done < size; ) {
            int n = Math.min(size - done, perChunk);
            chunk.clear().limit(n * itemBytes);
            while (chunk.hasRemaining()) {
                int got = channel.read(chunk, position);
                if (got < 0) {
                    throw new NpyFormatException(file, "truncated: the file ended while reading element " + (done + n));
                }
                position += got;
            }
            chunk.flip();
            sink.get(chunk, done, n);
            done += n;
        }
    }

    private static FileChannel open(Path file) throws IOException {
        Objects.requireNonNull(file, "file");
        if (Files.isDirectory(file)) {
            // Linux opens a folder for reading and fails only at the first read, without naming it.
            throw new FileSystemException(file.toString(), null, "is a directory, not a .npy file");
        }
        return FileChannel.open(file, StandardOpenOption.READ);
    }

    private static Header readHeader(Path file, FileChannel channel) throws IOException {
        long fileSize = channel.size();
        if (fileSize == 0) {
            throw new NpyFormatException(file, "empty file, not a .npy file");
        }
        ByteBuffer start = ByteBuffer.allocate(MAGIC.length + 2).order(ByteOrder.LITTLE_ENDIAN);
        readAt(channel, start, 0);
        for (int i = 0; i < MAGIC.length; i++) {
            if (i >= start.limit() || start.get(i) != MAGIC[i]) {
                throw new NpyFormatException(file, "not a .npy file (it does not start with \\x93NUMPY)");
            }
        }
        if (start.limit() < MAGIC.length + 2) {
            throw new NpyFormatException(file, "truncated: the file ends inside the format version");
        }
        int major = start.get(MAGIC.length) & 0xFF;
        int minor = start.get(MAGIC.length + 1) & 0xFF;
        if (major < 1 || major > 3 || minor != 0) {
            throw new NpyFormatException(file, "unsupported .npy format version " + major + "." + minor
                    + " (supported: 1.0, 2.0, 3.0)");
        }
        int lengthBytes = major == 1 ? 2 : 4;
        ByteBuffer lengthField = ByteBuffer.allocate(lengthBytes).order(ByteOrder.LITTLE_ENDIAN);
        readAt(channel, lengthField, MAGIC.length + 2);
        if (lengthField.limit() < lengthBytes) {
            throw new NpyFormatException(file, "truncated: the file ends inside the header length");
        }
        long headerLength = major == 1 ? lengthField.getShort(0) & 0xFFFF : lengthField.getInt(0) & 0xFFFFFFFFL;
        long headerStart = MAGIC.length + 2 + lengthBytes;
        if (headerLength > MAX_HEADER_BYTES) {
            throw new NpyFormatException(file, "malformed header: " + headerLength + " bytes long (at most "
                    + MAX_HEADER_BYTES + " accepted)");
        }
        if (headerStart + headerLength > fileSize) {
            throw new NpyFormatException(file, "truncated: the header is " + headerLength + " bytes but the file holds "
                    + (fileSize - headerStart) + " after the header length");
        }
        ByteBuffer headerBytes = ByteBuffer.allocate((int) headerLength);
        readAt(channel, headerBytes, headerStart);
        // 1.0 and 2.0 headers are latin-1; 3.0 allows UTF-8 (only field names of structured types use it).
        String text = new String(headerBytes.array(), major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);

        Map<String, Object> dict = HeaderParser.parseDict(file, text);
        DType dtype = parseDescr(file, dict.get("descr"));
        Object fortran = dict.get("fortran_order");
        if (!(fortran instanceof Boolean)) {
            throw new NpyFormatException(file, "malformed header: 'fortran_order' is " + HeaderParser.show(fortran)
                    + ", not True or False");
        }
        if ((Boolean) fortran) {
            throw new NpyFormatException(file, "Fortran-order arrays are not supported; save np.ascontiguousarray(a)");
        }
        int[] shape = parseShape(file, dict.get("shape"));
        long dataOffset = headerStart + headerLength;
        long expected = (long) NpyArray.checkedSize(shape) * dtype.bytes();
        long actual = fileSize - dataOffset;
        if (actual < expected) {
            throw new NpyFormatException(file, "truncated: shape " + NpyArray.shapeString(shape) + " of " + dtypeName(dtype)
                    + " needs " + expected + " data bytes, the file holds " + actual);
        }
        if (actual > expected) {
            throw new NpyFormatException(file, "size does not match shape: shape " + NpyArray.shapeString(shape) + " of "
                    + dtypeName(dtype) + " needs " + expected + " data bytes, the file holds " + actual);
        }
        return new Header(major, minor, dtype, shape, dataOffset);
    }

    /** Fills {@code buffer} from {@code position} or up to the end of the file; flips it. */
    private static void readAt(FileChannel channel, ByteBuffer buffer, long position) throws IOException {
        long at = position;
        while (buffer.hasRemaining()) {
            int got = channel.read(buffer, at);
            if (got < 0) {
                break;
            }
            at += got;
        }
        buffer.flip();
    }

    private static DType parseDescr(Path file, Object value) throws NpyFormatException {
        if (value instanceof List<?>) {
            throw new NpyFormatException(file, "structured arrays (descr " + HeaderParser.show(value)
                    + ") are not supported; save each field as its own array");
        }
        if (!(value instanceof String descr) || descr.isEmpty()) {
            throw new NpyFormatException(file, "malformed header: 'descr' is " + HeaderParser.show(value)
                    + ", not a type string such as '<f4'");
        }
        char order = descr.charAt(0);
        String type = "<>|=".indexOf(order) >= 0 ? descr.substring(1) : descr;
        DType dtype = switch (type) {
            case "f4" -> DType.FLOAT32;
            case "f8" -> DType.FLOAT64;
            case "i4" -> DType.INT32;
            case "i8" -> DType.INT64;
            default -> throw new NpyFormatException(file, "element type '" + descr + "' (" + describeType(type)
                    + ") is not supported: use float32, float64, int32 or int64, e.g. a.astype(np.float32)");
        };
        if (order == '>') {
            throw new NpyFormatException(file, "big-endian arrays (descr '" + descr + "') are not supported; save a.astype('<"
                    + type + "')");
        }
        if (order != '<') {
            throw new NpyFormatException(file, "byte order of descr '" + descr + "' is not little-endian ('<" + type + "')");
        }
        return dtype;
    }

    private static String describeType(String type) {
        if (type.isEmpty()) {
            return "empty";
        }
        String bits = type.substring(1);
        return switch (type.charAt(0)) {
            case 'b' -> "bool";
            case 'f' -> "float" + bitsOf(bits);
            case 'i' -> "int" + bitsOf(bits);
            case 'u' -> "uint" + bitsOf(bits);
            case 'c' -> "complex" + bitsOf(bits);
            case 'U' -> "unicode string";
            case 'S', 'a' -> "byte string";
            case 'O' -> "Python object";
            case 'V' -> "raw bytes";
            case 'M' -> "datetime64";
            case 'm' -> "timedelta64";
            default -> "unknown";
        };
    }

    private static String bitsOf(String bytes) {
        try {
            return Integer.toString(Integer.parseInt(bytes) * 8);
        } catch (NumberFormatException e) {
            return " of size '" + bytes + "'";
        }
    }

    private static int[] parseShape(Path file, Object value) throws NpyFormatException {
        if (!(value instanceof HeaderParser.Tuple tuple)) {
            throw new NpyFormatException(file, "malformed header: 'shape' is " + HeaderParser.show(value)
                    + ", not a tuple of integers");
        }
        int[] shape = new int[tuple.items().size()];
        for (int i = 0; i < shape.length; i++) {
            Object d = tuple.items().get(i);
            if (!(d instanceof Long dim) || dim < 0) {
                throw new NpyFormatException(file, "malformed header: 'shape' " + HeaderParser.show(value)
                        + " holds " + HeaderParser.show(d) + ", not a dimension");
            }
            if (dim > MAX_ELEMENTS) {
                throw new NpyFormatException(file, "shape " + HeaderParser.show(value) + " has a dimension over "
                        + MAX_ELEMENTS + ", more than one Java array holds");
            }
            shape[i] = (int) (long) dim;
        }
        try {
            NpyArray.checkedSize(shape);
        } catch (IllegalArgumentException e) {
            throw new NpyFormatException(file, e.getMessage());
        }
        return shape;
    }

    /**
     * Parses the Python literal of a header: a dict of str keys whose values are strings, ints,
     * booleans, None, tuples or lists (lists only appear in structured descrs, which are refused).
     * Python 2 era files wrote ints with an 'L' suffix; it is accepted, as NumPy does.
     */
    static final class HeaderParser {
        /** A Python tuple (a list is a {@link List}). */
        record Tuple(List<Object> items) {}

        /** Deeper nesting than any header needs: refused before it can exhaust the stack. */
        private static final int MAX_DEPTH = 16;

        private final Path file;
        private final String text;
        private int at;
        private int depth;

        private HeaderParser(Path file, String text) {
            this.file = file;
            this.text = text;
        }

        static Map<String, Object> parseDict(Path file, String text) throws NpyFormatException {
            HeaderParser p = new HeaderParser(file, text);
            p.skipSpace();
            if (!p.peek('{')) {
                throw p.error("expected a dict '{...}'");
            }
            Object value = p.value();
            p.skipSpace();
            if (p.at < text.length()) {
                throw p.error("unexpected text after the dict");
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> dict = (Map<String, Object>) value;
            for (String key : dict.keySet()) {
                if (!key.equals("descr") && !key.equals("fortran_order") && !key.equals("shape")) {
                    throw new NpyFormatException(file, "malformed header: unexpected key '" + key
                            + "' (expected 'descr', 'fortran_order' and 'shape')");
                }
            }
            for (String key : List.of("descr", "fortran_order", "shape")) {
                if (!dict.containsKey(key)) {
                    throw new NpyFormatException(file, "malformed header: no '" + key + "' key");
                }
            }
            return dict;
        }

        /** A value as Python would print it, for messages. */
        static String show(Object v) {
            if (v == null) {
                return "None";
            }
            if (v instanceof String s) {
                return "'" + s + "'";
            }
            if (v instanceof Boolean b) {
                return b ? "True" : "False";
            }
            if (v instanceof Tuple t) {
                StringBuilder s = new StringBuilder("(");
                for (int i = 0; i < t.items().size(); i++) {
                    s.append(i == 0 ? "" : ", ").append(show(t.items().get(i)));
                }
                return s.append(t.items().size() == 1 ? ",)" : ")").toString();
            }
            if (v instanceof List<?> l) {
                StringBuilder s = new StringBuilder("[");
                for (int i = 0; i < l.size(); i++) {
                    s.append(i == 0 ? "" : ", ").append(show(l.get(i)));
                }
                return s.append(']').toString();
            }
            if (v instanceof Map<?, ?>) {
                return "a dict";
            }
            return v.toString();
        }

        private Object value() throws NpyFormatException {
            if (++depth > MAX_DEPTH) {
                throw error("nested more than " + MAX_DEPTH + " deep");
            }
            try {
                return plainValue();
            } finally {
                depth--;
            }
        }

        private Object plainValue() throws NpyFormatException {
            skipSpace();
            if (at >= text.length()) {
                throw error("unexpected end of header");
            }
            char c = text.charAt(at);
            switch (c) {
                case '{':
                    return dict();
                case '(':
                    return new Tuple(sequence('(', ')', true));
                case '[':
                    return sequence('[', ']', false);
                case '\'':
                case '"':
                    return string();
                default:
                    break;
            }
            if (c == '-' || c == '+' || Character.isDigit(c)) {
                return integer();
            }
            if (Character.isLetter(c)) {
                int start = at;
                while (at < text.length() && Character.isLetterOrDigit(text.charAt(at))) {
                    at++;
                }
                String word = text.substring(start, at);
                switch (word) {
                    case "True":
                        return Boolean.TRUE;
                    case "False":
                        return Boolean.FALSE;
                    case "None":
                        return null;
                    default:
                        at = start;
                        throw error("unexpected '" + word + "'");
                }
            }
            throw error("unexpected '" + c + "'");
        }

        private Map<String, Object> dict() throws NpyFormatException {
            Map<String, Object> map = new LinkedHashMap<>();
            at++; // '{'
            while (true) {
                skipSpace();
                if (peek('}')) {
                    at++;
                    return map;
                }
                Object key = value();
                if (!(key instanceof String k)) {
                    throw error("dict key " + show(key) + " is not a string");
                }
                skipSpace();
                expect(':');
                Object v = value();
                if (map.containsKey(k)) {
                    throw error("key '" + k + "' appears twice");
                }
                map.put(k, v);
                skipSpace();
                if (peek(',')) {
                    at++;
                } else if (!peek('}')) {
                    throw error("expected ',' or '}'");
                }
            }
        }

        private List<Object> sequence(char open, char close, boolean tuple) throws NpyFormatException {
            List<Object> items = new ArrayList<>();
            at++; // open
            boolean comma = false;
            while (true) {
                skipSpace();
                if (peek(close)) {
                    at++;
                    // (3) is the int 3 in Python, not a tuple; NumPy's shapes are always written (3,)
                    if (tuple && items.size() == 1 && !comma) {
                        throw error("(" + show(items.get(0)) + ") is not a tuple; a 1-D shape is written ("
                                + show(items.get(0)) + ",)");
                    }
                    return items;
                }
                items.add(value());
                skipSpace();
                comma = peek(',');
                if (comma) {
                    at++;
                } else if (!peek(close)) {
                    throw error("expected ',' or '" + close + "'");
                }
            }
        }

        private String string() throws NpyFormatException {
            char quote = text.charAt(at++);
            StringBuilder s = new StringBuilder();
            while (at < text.length()) {
                char c = text.charAt(at++);
                if (c == quote) {
                    return s.toString();
                }
                if (c == '\\') {
                    if (at >= text.length()) {
                        break;
                    }
                    c = text.charAt(at++);
                }
                s.append(c);
            }
            throw error("unterminated string");
        }

        private Long integer() throws NpyFormatException {
            int start = at;
            if (peek('-') || peek('+')) {
                at++;
            }
            int digits = at;
            while (at < text.length() && Character.isDigit(text.charAt(at))) {
                at++;
            }
            if (at == digits) {
                at = start;
                throw error("expected a number");
            }
            String number = text.substring(start, at);
            if (peek('L')) {
                at++;
            }
            if (at < text.length() && (Character.isLetterOrDigit(text.charAt(at)) || text.charAt(at) == '.')) {
                int end = at;
                while (end < text.length() && ",)]}: \t\r\n".indexOf(text.charAt(end)) < 0) {
                    end++;
                }
                at = start;
                throw error("'" + text.substring(start, end) + "' is not an integer");
            }
            try {
                return Long.parseLong(number);
            } catch (NumberFormatException e) {
                at = start;
                throw error("integer " + number + " is out of range");
            }
        }

        private void skipSpace() {
            while (at < text.length() && Character.isWhitespace(text.charAt(at))) {
                at++;
            }
        }

        private boolean peek(char c) {
            return at < text.length() && text.charAt(at) == c;
        }

        private void expect(char c) throws NpyFormatException {
            if (!peek(c)) {
                throw error("expected '" + c + "'");
            }
            at++;
        }

        private NpyFormatException error(String what) {
            String shown = text.strip();
            if (shown.length() > 120) {
                shown = shown.substring(0, 117) + "...";
            }
            return new NpyFormatException(file, "malformed header: " + what + " at character " + at + " of " + shown);
        }
    }
}
