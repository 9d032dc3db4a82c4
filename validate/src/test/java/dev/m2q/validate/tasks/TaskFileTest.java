package dev.m2q.validate.tasks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.m2q.core.InputException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.apache.commons.compress.compressors.CompressorStreamFactory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Task files: the four public layouts through their --task-fields mappings, and bad files. */
class TaskFileTest {
    @TempDir
    Path dir;

    private Path write(String name, String... lines) throws IOException {
        Path f = dir.resolve(name);
        Files.writeString(f, String.join("\n", lines) + "\n");
        return f;
    }

    private static TaskItem.Choice only(List<TaskFile> tasks) {
        assertEquals(1, tasks.size());
        assertEquals(1, tasks.getFirst().items().size());
        return assertInstanceOf(TaskItem.Choice.class, tasks.getFirst().items().getFirst());
    }

    /** MedQA (jind11/MedQA JSONL): options an object of letter → text, answer_idx a letter, answer the text. */
    private static final String MEDQA =
            "{\"question\": \"Which drug is safe in pregnancy?\", \"answer\": \"Nitrofurantoin\","
                    + " \"options\": {\"A\": \"Ampicillin\", \"B\": \"Ceftriaxone\", \"C\": \"Ciprofloxacin\", \"D\":"
                    + " \"Doxycycline\", \"E\": \"Nitrofurantoin\"}, \"meta_info\": \"step2&3\", \"answer_idx\": \"E\"}";

    @Test
    void medQa() throws IOException {
        Path f = write("medqa_test.jsonl", MEDQA);
        TaskItem.Choice it =
                only(TaskFile.read(f, TaskFields.parse("question=question,choices=options,answer=answer_idx")));
        assertEquals("Which drug is safe in pregnancy?", it.context());
        assertEquals(
                List.of("Ampicillin", "Ceftriaxone", "Ciprofloxacin", "Doxycycline", "Nitrofurantoin"), it.choices());
        assertEquals(4, it.answer());
        assertEquals("1", it.id(), "no id field: the line number");
        // the answer text instead of the letter picks the same choice
        assertEquals(
                4,
                only(TaskFile.read(f, TaskFields.parse("choices=options,answer=answer")))
                        .answer());

        TaskItem.Choice letters = only(TaskFile.read(
                f, TaskFields.parse("question=question,choices=options,answer=answer_idx,format=letters")));
        assertEquals(
                "Question: Which drug is safe in pregnancy?\nA. Ampicillin\nB. Ceftriaxone\nC. Ciprofloxacin\n"
                        + "D. Doxycycline\nE. Nitrofurantoin\nAnswer:",
                letters.context());
        assertEquals(List.of("A", "B", "C", "D", "E"), letters.choices());
        assertEquals(4, letters.answer());
    }

    @Test
    void medMcqa() throws IOException {
        Path f = write(
                "medmcqa.jsonl",
                "{\"id\": \"e9ad821a\", \"question\": \"Chronic urethral obstruction leads to\", \"opa\": \"Hyperplasia\","
                        + " \"opb\": \"Hyperophy\", \"opc\": \"Atrophy\", \"opd\": \"Dyplasia\", \"cop\": 2,"
                        + " \"choice_type\": \"single\", \"exp\": null, \"subject_name\": \"Anatomy\"}");
        TaskItem.Choice it = only(TaskFile.read(f, TaskFields.parse("choices=opa|opb|opc|opd,answer=cop")));
        assertEquals("e9ad821a", it.id());
        assertEquals(List.of("Hyperplasia", "Hyperophy", "Atrophy", "Dyplasia"), it.choices());
        assertEquals(2, it.answer(), "Hugging Face export: cop counts from 0");
        TaskItem.Choice base1 =
                only(TaskFile.read(f, TaskFields.parse("choices=opa|opb|opc|opd,answer=cop,index_base=1")));
        assertEquals(1, base1.answer(), "original release: cop counts from 1");
    }

    @Test
    void pubMedQa() throws IOException {
        Path f = write(
                "pubmedqa.jsonl",
                "{\"pubid\": 21645374, \"question\": \"Do mitochondria play a role?\", \"context\": {\"contexts\":"
                        + " [\"First part.\", \"Second part.\"], \"labels\": [\"BACKGROUND\", \"RESULTS\"]},"
                        + " \"long_answer\": \"Yes, they do.\", \"final_decision\": \"maybe\"}");
        TaskItem.Choice it = only(TaskFile.read(
                f,
                TaskFields.parse("id=pubid,context=context.contexts,fixed_choices=yes|no|maybe,answer=final_decision,"
                        + "format=qa")));
        assertEquals("21645374", it.id());
        assertEquals(
                "Abstract: First part.\nSecond part.\nQuestion: Do mitochondria play a role?\nAnswer:", it.context());
        assertEquals(List.of("yes", "no", "maybe"), it.choices());
        assertEquals(2, it.answer());
    }

    @Test
    void mmluWithSubjectsAsTasks() throws IOException {
        Path f = write(
                "mmlu_medical.jsonl",
                "{\"question\": \"The pleura\", \"subject\": \"anatomy\", \"choices\": [\"have no sensory innervation.\","
                        + " \"are separated by a 2 mm space.\", \"extend into the neck.\", \"are derived from mesoderm.\"],"
                        + " \"answer\": 2}",
                "",
                "{\"question\": \"Glucose is stored as\", \"subject\": \"college_medicine\", \"choices\": [\"glycogen\","
                        + " \"starch\", \"fat\", \"protein\"], \"answer\": 0}",
                "{\"question\": \"Which bone is in the arm?\", \"subject\": \"anatomy\", \"choices\": [\"femur\", \"tibia\","
                        + " \"humerus\", \"fibula\"], \"answer\": 2}");
        List<TaskFile> tasks = TaskFile.read(f, TaskFields.parse("task=subject,format=letters"));
        assertEquals(
                List.of("anatomy", "college_medicine"),
                tasks.stream().map(TaskFile::name).toList());
        assertEquals(
                List.of("1", "4"),
                tasks.getFirst().items().stream().map(TaskItem::id).toList());
        TaskItem.Choice glucose = (TaskItem.Choice) tasks.get(1).items().getFirst();
        assertEquals(3, glucose.line(), "a blank line still counts");
        assertEquals(
                "Question: Glucose is stored as\nA. glycogen\nB. starch\nC. fat\nD. protein\nAnswer:",
                glucose.context());
        assertEquals(0, glucose.answer());
        // without task=subject, one task named after the file
        assertEquals(
                List.of("mmlu_medical"),
                TaskFile.read(f, TaskFields.DEFAULT).stream()
                        .map(TaskFile::name)
                        .toList());
    }

    @Test
    void bundledLayoutAndAnswerForms() throws IOException {
        Path f = write(
                "verses.jsonl",
                "{\"id\": \"v1\", \"context\": \"In the beginning\", \"choices\": [\"God\", \"man\"], \"answer\": 0}",
                "{\"id\": \"v2\", \"context\": \"And the earth\", \"choices\": [\"was\", \"is\", \"be\"], \"answer\": \"B\"}",
                "{\"id\": \"v3\", \"context\": \"And God\", \"choices\": [\"said\", \"saw\"], \"answer\": \"saw\"}");
        List<TaskItem> items =
                TaskFile.readAll(List.of(f), TaskFields.DEFAULT).getFirst().items();
        assertEquals(
                List.of(0, 1, 1),
                items.stream().map(i -> ((TaskItem.Choice) i).answer()).toList());
        assertEquals("In the beginning", ((TaskItem.Choice) items.getFirst()).context());
    }

    @Test
    void generativeItems() throws IOException {
        Path f = write(
                "gen.jsonl",
                "{\"id\": \"g1\", \"prompt\": \"2+2=\", \"answer\": 4}",
                "{\"id\": \"g2\", \"messages\": [{\"role\": \"user\", \"content\": \"Pick one\"}], \"choices\": [\"x\", \"y\"],"
                        + " \"answer\": \"B\"}");
        TaskFile t = TaskFile.read(f, TaskFields.DEFAULT).getFirst();
        assertTrue(t.generative());
        TaskItem.Generation g1 = (TaskItem.Generation) t.items().getFirst();
        assertEquals("2+2=", g1.prompt());
        assertEquals("4", g1.reference());
        assertFalse(g1.lettered());
        TaskItem.Generation g2 = (TaskItem.Generation) t.items().get(1);
        assertEquals("Pick one", g2.messages().getFirst().content());
        assertEquals(List.of("x", "y"), g2.options());
        assertEquals(1, g2.answer());
        assertTrue(g2.lettered());

        // a multiple-choice layout as generation: the lettered prompt, the letter's choice as reference
        TaskFile medqa = TaskFile.read(
                        write("medqa_gen.jsonl", MEDQA),
                        TaskFields.parse("choices=options,answer=answer_idx,format=letters,mode=generate"))
                .getFirst();
        TaskItem.Generation m = (TaskItem.Generation) medqa.items().getFirst();
        assertTrue(m.prompt().endsWith("E. Nitrofurantoin\nAnswer:"));
        assertEquals("Nitrofurantoin", m.reference());
        assertTrue(m.lettered());
    }

    /** Asserts the message names the file, the line and (when given) the field. */
    private static void assertNames(InputException e, Path f, int line, String field, String problem) {
        String msg = e.getMessage();
        assertTrue(msg.startsWith(f + ":" + line + ": "), msg);
        if (field != null) {
            assertTrue(msg.contains("field \"" + field + "\""), msg);
        }
        assertTrue(msg.contains(problem), msg);
    }

    private InputException bad(String fields, String... lines) throws IOException {
        Path f = write("bad.jsonl", lines);
        return assertThrows(InputException.class, () -> TaskFile.read(f, TaskFields.parse(fields)));
    }

    @Test
    void badFilesNameFileLineAndField() throws IOException {
        String ok = "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"answer\": 0}";
        Path f = dir.resolve("bad.jsonl");
        assertNames(bad("", ok, "{\"context\": \"c\", oops}"), f, 2, null, "not a JSON object");
        assertNames(bad("", ok, "[1, 2]"), f, 2, null, "not a JSON object");
        assertNames(bad("", ok, ok, "{\"context\": \"c\", \"choices\": [\"a\", \"b\"]}"), f, 3, "answer", "missing");
        assertNames(
                bad("", "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"answer\": 7}"),
                f,
                1,
                "answer",
                "out of range");
        assertNames(
                bad("", "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"answer\": -1}"),
                f,
                1,
                "answer",
                "out of range");
        assertNames(
                bad("", "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"answer\": \"D\"}"),
                f,
                1,
                "answer",
                "out of range");
        assertNames(
                bad("", "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"answer\": \"zz\"}"),
                f,
                1,
                "answer",
                "not an index");
        assertNames(
                bad("", "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"answer\": 0.5}"),
                f,
                1,
                "answer",
                "not an index");
        assertNames(bad("", "{\"context\": \"c\", \"choices\": [], \"answer\": 0}"), f, 1, "choices", "no choices");
        assertNames(
                bad("", "{\"context\": \"c\", \"choices\": [\"a\", \" \"], \"answer\": 0}"),
                f,
                1,
                "choices",
                "choice 1 is empty");
        assertNames(bad("", "{\"context\": \"c\", \"choices\": \"a\", \"answer\": 0}"), f, 1, "choices", "not a list");
        assertNames(bad("", "{\"context\": \"c\", \"answer\": 0}"), f, 1, "choices", "missing");
        assertNames(bad("", "{\"choices\": [\"a\", \"b\"], \"answer\": 0}"), f, 1, "question", "missing");
        assertNames(
                bad("choices=opa|opb", "{\"question\": \"q\", \"opa\": \"x\", \"answer\": 0}"), f, 1, "opb", "missing");
        assertNames(
                bad("", "{\"id\": 1, " + ok.substring(1), "{\"id\": 1, " + ok.substring(1)),
                f,
                2,
                "id",
                "repeats line 1");
        assertNames(bad("", ok, "{\"prompt\": \"p\", \"answer\": \"x\"}"), f, 2, "prompt", "mixes");
        assertNames(bad("", "{\"messages\": [{\"role\": \"user\"}], \"answer\": \"x\"}"), f, 1, "messages[0]", "role");
        assertNames(bad("", "{\"prompt\": \"p\", \"answer\": \" . \"}"), f, 1, "answer", "empty");
        assertNames(
                bad("", "{\"context\": {\"a\": 1}, \"choices\": [\"a\"], \"answer\": 0}"), f, 1, "context", "not text");

        assertNames(
                bad("format=qa", "{\"context\": \"c\", \"choices\": [\"a\"], \"answer\": 0}"),
                f,
                1,
                "question",
                "format=qa asks a question");
        InputException empty = bad("", "", "  ");
        assertEquals(f + ": no items (expected one JSON object per line)", empty.getMessage());
        InputException missing =
                assertThrows(InputException.class, () -> TaskFile.read(dir.resolve("none.jsonl"), TaskFields.DEFAULT));
        assertTrue(missing.getMessage().contains("none.jsonl"), missing.getMessage());
    }

    @Test
    void duplicateTaskNamesAcrossFiles() throws IOException {
        String ok = "{\"context\": \"c\", \"choices\": [\"a\", \"b\"], \"answer\": 0}";
        Path a = write("t.jsonl", ok);
        Files.createDirectory(dir.resolve("other"));
        Path b = dir.resolve("other").resolve("t.jsonl");
        Files.writeString(b, ok);
        InputException e =
                assertThrows(InputException.class, () -> TaskFile.readAll(List.of(a, b), TaskFields.DEFAULT));
        assertTrue(e.getMessage().contains(a.toString()) && e.getMessage().contains(b.toString()), e.getMessage());
    }

    @Test
    void badSpecs() {
        for (String spec : new String[] {
            "question",
            "colour=red",
            "answer=",
            "index_base=2",
            "format=cloze",
            "mode=both",
            "choices=a|",
            "id=a,id=b",
            "choices=x,fixed_choices=a|b"
        }) {
            InputException e = assertThrows(InputException.class, () -> TaskFields.parse(spec), spec);
            assertTrue(e.getMessage().startsWith("--task-fields: "), e.getMessage());
        }
        TaskFields f = TaskFields.parse(" question = q , choices = opa|opb ");
        assertEquals("q", f.question());
        assertEquals(List.of("opa", "opb"), f.choices());
        assertEquals(TaskFields.DEFAULT, TaskFields.parse(""));
    }

    /** {@code data} as the commons-compress compression {@code kind}. */
    private static byte[] compress(String kind, byte[] data) throws Exception {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (OutputStream out = new CompressorStreamFactory().createCompressorOutputStream(kind, bytes)) {
            out.write(data);
        }
        return bytes.toByteArray();
    }

    private static byte[] compress(String kind, String text) throws Exception {
        return compress(kind, text.getBytes(StandardCharsets.UTF_8));
    }

    /** A tar of regular files, in the map's order. */
    private static byte[] tar(Map<String, byte[]> members) throws IOException {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (TarArchiveOutputStream tar = new TarArchiveOutputStream(bytes)) {
            for (var m : members.entrySet()) {
                TarArchiveEntry e = new TarArchiveEntry(m.getKey());
                e.setSize(m.getValue().length);
                tar.putArchiveEntry(e);
                tar.write(m.getValue());
                tar.closeArchiveEntry();
            }
        }
        return bytes.toByteArray();
    }

    @Test
    void compressedFilesAndTarMembersAreTasksOfTheirOwn() throws Exception {
        String v1 =
                "{\"id\": \"v1\", \"context\": \"In the beginning\", \"choices\": [\"God\", \"man\"], \"answer\": 0}";
        String g1 = "{\"id\": \"g1\", \"prompt\": \"2+2=\", \"answer\": 4}";
        // A .jsonl.xz file: the task is named without either suffix, and reads as the plain file does.
        Path plain = write("verses.jsonl", v1);
        Path xz = Files.write(dir.resolve("verses.jsonl.xz"), compress(CompressorStreamFactory.XZ, v1 + "\n"));
        TaskFile fromXz = TaskFile.read(xz, TaskFields.DEFAULT).getFirst();
        assertEquals("verses", fromXz.name());
        assertEquals(TaskFile.read(plain, TaskFields.DEFAULT).getFirst().items(), fromXz.items());

        // A tar.gz of a zstd member and a plain one: two tasks, in archive order (not by name).
        Map<String, byte[]> members = new LinkedHashMap<>();
        members.put("suite/verses.jsonl.zst", compress(CompressorStreamFactory.ZSTANDARD, v1 + "\n"));
        members.put("suite/gen.jsonl", g1.getBytes(StandardCharsets.UTF_8));
        Path tgz = Files.write(dir.resolve("suite.tar.gz"), compress(CompressorStreamFactory.GZIP, tar(members)));
        List<TaskFile> tasks = TaskFile.readAll(List.of(tgz), TaskFields.DEFAULT);
        assertEquals(
                List.of("verses", "gen"), tasks.stream().map(TaskFile::name).toList());
        assertEquals(tgz + " (member suite/verses.jsonl.zst)", tasks.getFirst().where());
        assertEquals(tgz, tasks.getFirst().path());
        assertTrue(tasks.get(1).generative());

        // The same task name from a tar member and a file: both named.
        InputException dup =
                assertThrows(InputException.class, () -> TaskFile.readAll(List.of(tgz, plain), TaskFields.DEFAULT));
        assertTrue(dup.getMessage().contains(tgz + " (member suite/verses.jsonl.zst) and " + plain), dup.getMessage());

        // A bad line in a member: the file, the member and the line.
        members.put("suite/gen.jsonl", (g1 + "\n{\"id\": \"g2\"}\n").getBytes(StandardCharsets.UTF_8));
        Path bad = Files.write(dir.resolve("bad.tar"), tar(members));
        InputException e = assertThrows(InputException.class, () -> TaskFile.read(bad, TaskFields.DEFAULT));
        assertTrue(e.getMessage().startsWith(bad + " (member suite/gen.jsonl):2: "), e.getMessage());
    }
}
