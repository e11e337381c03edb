import com.google.gson.Gson;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import ml.combust.bundle.dsl.Bundle;
import ml.combust.mleap.core.types.BasicType;
import ml.combust.mleap.core.types.ScalarType;
import ml.combust.mleap.core.types.StructField;
import ml.combust.mleap.core.types.StructType;
import ml.combust.mleap.runtime.MleapContext;
import ml.combust.mleap.runtime.frame.DefaultLeapFrame;
import ml.combust.mleap.runtime.frame.Row;
import ml.combust.mleap.runtime.frame.Transformer;
import ml.combust.mleap.runtime.javadsl.BundleBuilder;
import ml.combust.mleap.runtime.javadsl.ContextBuilder;
import ml.combust.mleap.runtime.javadsl.LeapFrameBuilder;
import ml.combust.mleap.runtime.javadsl.LeapFrameBuilderSupport;
import ml.combust.mleap.runtime.javadsl.LeapFrameSupport;
import scala.collection.JavaConverters;

/**
 * One MLeap bundle, transformed row by row through the MLeap runtime Java API the
 * way the SageMaker SparkML Serving container does it: a one-row LeapFrame built
 * from a SAGEMAKER_SPARKML_SCHEMA document, transform, select the schema's output
 * field, densify a vector output.
 *
 * <pre>
 * java -cp "build/jars/runtime/*" MleapRuntimeCli BUNDLE_DIR --schema schema.json [--bench N]
 * stdin:  JSON lines, one object per row: input field name -> value
 * stdout: one line per row, in input order: {"output": value} or {"error": "message"}
 *         with --bench N: each row transformed N times after a warm-up, then ONE line
 *         {"p50_us":..,"p99_us":..,"calls":..}
 * </pre>
 * Exit status: 0 when every row was read (row failures are reported in-line), 2 on
 * bad arguments or an unreadable bundle/schema.
 */
public final class MleapRuntimeCli {
    private static final Gson GSON = new Gson();

    private final Transformer transformer;
    private final List<String> inputNames = new ArrayList<>();
    private final List<String> inputTypes = new ArrayList<>();
    private final String outputName;
    private final String outputType;
    private final String outputStruct;
    private final StructType inputSchema;
    private final LeapFrameBuilder frames = new LeapFrameBuilder();
    private final LeapFrameBuilderSupport types = new LeapFrameBuilderSupport();
    private final LeapFrameSupport frameSupport = new LeapFrameSupport();

    private MleapRuntimeCli(File bundleDir, JsonObject schema) {
        MleapContext context = new ContextBuilder().createMleapContext();
        Bundle<Transformer> bundle = new BundleBuilder().load(bundleDir, context);
        this.transformer = bundle.root();
        List<StructField> fields = new ArrayList<>();
        for (JsonElement element : schema.getAsJsonArray("input")) {
            JsonObject column = element.getAsJsonObject();
            String struct = column.has("struct") ? column.get("struct").getAsString() : "basic";
            if (!"basic".equals(struct)) {
                throw new IllegalArgumentException("only basic input fields are supported, got struct " + struct);
            }
            String name = column.get("name").getAsString();
            String type = column.get("type").getAsString();
            inputNames.add(name);
            inputTypes.add(type);
            fields.add(frames.createField(name, new ScalarType(basicType(type), true)));
        }
        this.inputSchema = frames.createSchema(fields);
        JsonObject output = schema.getAsJsonObject("output");
        this.outputName = output.get("name").getAsString();
        this.outputType = output.get("type").getAsString();
        this.outputStruct = output.has("struct") ? output.get("struct").getAsString() : "basic";
    }

    private BasicType basicType(String type) {
        switch (type) {
            case "boolean": return types.createBoolean();
            case "byte": return types.createByte();
            case "short": return types.createShort();
            case "int": return types.createInt();
            case "long": return types.createLong();
            case "float": return types.createFloat();
            case "double": return types.createDouble();
            case "string": return types.createString();
            default: throw new IllegalArgumentException("unsupported schema type " + type);
        }
    }

    /** Same conversions as the serving container: every value goes through its string form. */
    private static Object javaValue(String type, JsonElement value) {
        String text = value.getAsString();
        switch (type) {
            case "boolean": return Boolean.valueOf(text);
            case "byte": return Byte.valueOf(text);
            case "short": return Short.valueOf(text);
            case "int": return Integer.valueOf(text);
            case "long": return Long.valueOf(text);
            case "float": return Float.valueOf(text);
            case "double": return Double.valueOf(text);
            case "string": return text;
            default: throw new IllegalArgumentException("unsupported schema type " + type);
        }
    }

    DefaultLeapFrame frameFor(JsonObject row) {
        List<Object> values = new ArrayList<>();
        for (int i = 0; i < inputNames.size(); i++) {
            JsonElement value = row.get(inputNames.get(i));
            if (value == null || value.isJsonNull()) {
                throw new IllegalArgumentException("missing input field " + inputNames.get(i));
            }
            values.add(javaValue(inputTypes.get(i), value));
        }
        List<Row> rows = Collections.singletonList(types.createRowFromIterable(values));
        return frames.createFrame(inputSchema, rows);
    }

    Object transform(DefaultLeapFrame frame) {
        DefaultLeapFrame transformed = transformer.transform(frame).get();
        DefaultLeapFrame selected = frameSupport.select(transformed, Collections.singletonList(outputName));
        Row row = frameSupport.collect(selected).get(0);
        if ("vector".equals(outputStruct)) {
            List<Object> dense = new ArrayList<>();
            Iterator<?> values = JavaConverters.asJavaIteratorConverter(row.getTensor(0).toDense().rawValuesIterator()).asJava();
            values.forEachRemaining(dense::add);
            return dense;
        }
        if ("array".equals(outputStruct)) {
            return new ArrayList<Object>(row.getList(0));
        }
        switch (outputType) {
            case "boolean": return row.getBool(0);
            case "byte": return row.getByte(0);
            case "short": return row.getShort(0);
            case "int": return row.getInt(0);
            case "long": return row.getLong(0);
            case "float":
            case "double": return row.getDouble(0);
            case "string": return row.getString(0);
            default: throw new IllegalArgumentException("unsupported schema type " + outputType);
        }
    }

    private static String describe(Throwable error) {
        Throwable root = error;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        String message = root.getMessage();
        return root.getClass().getSimpleName() + (message == null ? "" : ": " + message);
    }

    private void serve(BufferedReader in, PrintWriter out) throws Exception {
        String line;
        while ((line = in.readLine()) != null) {
            if (line.trim().isEmpty()) {
                continue;
            }
            Map<String, Object> answer = new LinkedHashMap<>();
            try {
                answer.put("output", transform(frameFor(JsonParser.parseString(line).getAsJsonObject())));
            } catch (Exception error) {
                answer.put("error", describe(error));
            }
            out.println(GSON.toJson(answer));
            // Flush only when no further input is waiting: interactive callers get every
            // answer at once, bulk callers are not slowed down by a flush per row.
            if (!in.ready()) {
                out.flush();
            }
        }
        out.flush();
    }

    private void bench(BufferedReader in, PrintWriter out, int iterations) throws Exception {
        List<DefaultLeapFrame> inputs = new ArrayList<>();
        String line;
        while ((line = in.readLine()) != null) {
            if (!line.trim().isEmpty()) {
                inputs.add(frameFor(JsonParser.parseString(line).getAsJsonObject()));
            }
        }
        if (inputs.isEmpty()) {
            throw new IllegalArgumentException("--bench needs at least one input row on stdin");
        }
        int warmup = Math.max(200, iterations / 10);
        for (int i = 0; i < warmup; i++) {
            for (DefaultLeapFrame frame : inputs) {
                transform(frame);
            }
        }
        long[] nanos = new long[iterations * inputs.size()];
        int calls = 0;
        for (int i = 0; i < iterations; i++) {
            for (DefaultLeapFrame frame : inputs) {
                long start = System.nanoTime();
                transform(frame);
                nanos[calls++] = System.nanoTime() - start;
            }
        }
        Arrays.sort(nanos);
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("p50_us", percentile(nanos, 0.50) / 1000.0);
        result.put("p99_us", percentile(nanos, 0.99) / 1000.0);
        result.put("calls", calls);
        out.println(GSON.toJson(result));
        out.flush();
    }

    private static long percentile(long[] sorted, double fraction) {
        int index = (int) Math.ceil(fraction * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, index))];
    }

    private static int usage(String problem) {
        System.err.println("error: " + problem);
        System.err.println("usage: java -cp 'build/jars/runtime/*' MleapRuntimeCli BUNDLE_DIR --schema SCHEMA_JSON [--bench ITERATIONS]");
        return 2;
    }

    static int run(String[] args) throws Exception {
        String bundleDir = null;
        String schemaPath = null;
        Integer iterations = null;
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if ("--schema".equals(arg) && i + 1 < args.length) {
                schemaPath = args[++i];
            } else if ("--bench".equals(arg) && i + 1 < args.length) {
                try {
                    iterations = Integer.valueOf(args[++i]);
                } catch (NumberFormatException e) {
                    return usage("--bench needs a positive integer, got " + args[i]);
                }
                if (iterations < 1) {
                    return usage("--bench needs a positive integer, got " + iterations);
                }
            } else if (arg.startsWith("--") || bundleDir != null) {
                return usage("unexpected argument " + arg);
            } else {
                bundleDir = arg;
            }
        }
        if (bundleDir == null || schemaPath == null) {
            return usage("a bundle directory and --schema are required");
        }
        File bundle = new File(bundleDir);
        if (!new File(bundle, "bundle.json").isFile()) {
            return usage(bundleDir + " is not an unzipped MLeap bundle (no bundle.json)");
        }
        JsonObject schema = JsonParser.parseString(
            new String(Files.readAllBytes(Paths.get(schemaPath)), StandardCharsets.UTF_8)).getAsJsonObject();
        MleapRuntimeCli cli = new MleapRuntimeCli(bundle, schema);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintWriter out = new PrintWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8), false);
        if (iterations != null) {
            cli.bench(in, out, iterations);
        } else {
            cli.serve(in, out);
        }
        return 0;
    }

    public static void main(String[] args) throws Exception {
        System.exit(run(args));
    }
}
