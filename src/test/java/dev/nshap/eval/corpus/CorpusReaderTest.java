package dev.nshap.eval.corpus;

import dev.nshap.NshapException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class CorpusReaderTest {

    @Test void csvQuotingLineBreaksAndPositions(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("c.csv");
        Files.writeString(f, "\"1\",\"plain text\"\r\n\"2\",\"has, a comma and \"\"quotes\"\"\"\n"
                + "3,\"spans\ntwo lines\"\n\n4,last\n");
        List<CorpusReader.Document> d = CorpusReader.read(f, new CorpusReader.Options(CorpusReader.Format.CSV, "2", "1", null, null));
        assertEquals(4, d.size());
        assertEquals("plain text", d.get(0).text());
        assertEquals("1", d.get(0).label());
        assertEquals("has, a comma and \"quotes\"", d.get(1).text());
        assertEquals("spans\ntwo lines", d.get(2).text());
        assertEquals(3, d.get(2).line());
        assertEquals(6, d.get(3).line());
        assertEquals("last", d.get(3).text());
        assertTrue(d.get(3).source().endsWith("c.csv:6"), d.get(3).source());
    }

    @Test void csvHeaderByNameSemicolonsAndErrors(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("e.csv");
        Files.writeString(f, "comment;isHate\nyou are nice;0.0\n\"bad; person\";1.0\n");
        List<CorpusReader.Document> d = CorpusReader.read(f, new CorpusReader.Options(null, "comment", "isHate", ';', null));
        assertEquals(List.of("you are nice", "bad; person"), d.stream().map(CorpusReader.Document::text).toList());
        assertEquals("1.0", d.get(1).label());
        NshapException e = assertThrows(NshapException.class,
                () -> CorpusReader.read(f, new CorpusReader.Options(null, "tweet", null, ';', null)));
        assertTrue(e.getMessage().contains("no column 'tweet'"), e.getMessage());
        Path g = dir.resolve("g.csv");
        Files.writeString(g, "a,b\nx,y\nonly\n");
        e = assertThrows(NshapException.class, () -> CorpusReader.read(g, new CorpusReader.Options(null, "b", "a", null, null)));
        assertTrue(e.getMessage().contains("g.csv:3"), e.getMessage());
        Path h = dir.resolve("h.csv");
        Files.writeString(h, "1,\"never closed\n");
        e = assertThrows(NshapException.class, () -> CorpusReader.read(h, new CorpusReader.Options(null, "2", "1", null, null)));
        assertTrue(e.getMessage().contains("h.csv:1: unterminated"), e.getMessage());
    }

    @Test void jsonlAndLinesLabelledByFileName(@TempDir Path dir) throws Exception {
        Path j = dir.resolve("a.jsonl");
        Files.writeString(j, "{\"text\":\"one\",\"y\":3}\n\n{\"text\":\"two\",\"y\":\"x\"}\n{oops\n");
        NshapException e = assertThrows(NshapException.class, () -> CorpusReader.read(j, new CorpusReader.Options(null, null, "y", null, null)));
        assertTrue(e.getMessage().contains("a.jsonl:4: invalid JSON"), e.getMessage());
        Files.writeString(j, "{\"text\":\"one\",\"y\":3}\n\n{\"text\":\"two\",\"y\":\"x\"}\n");
        List<CorpusReader.Document> d = CorpusReader.read(j, new CorpusReader.Options(null, null, "y", null, null));
        assertEquals("3", d.get(0).label());
        assertEquals(3, d.get(1).line());
        Path l = dir.resolve("toxic.txt");
        Files.writeString(l, "first line\n\n  second line  \n");
        d = CorpusReader.read(l, CorpusReader.Options.defaults());
        assertEquals(List.of("first line", "second line"), d.stream().map(CorpusReader.Document::text).toList());
        assertEquals("toxic", d.get(1).label());
        assertEquals(3, d.get(1).line());
        assertThrows(NshapException.class, () -> CorpusReader.read(dir.resolve("none.txt"), CorpusReader.Options.defaults()));
    }

    /** Several text columns joined per record: a blank field in one row must not shift the next row's pairing. */
    @Test void joinedTextColumnsStayPairedPerRecord(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("news.csv");
        Files.writeString(f, "label,title,description\n1,Title A,Desc A\n2,,Desc B\n3,Title C,\n4,\"Title, D\",Desc D\n");
        List<CorpusReader.Document> d = CorpusReader.read(f, new CorpusReader.Options(CorpusReader.Format.CSV, "title+description", "label", ',', true));
        assertEquals(List.of("Title A\nDesc A", "Desc B", "Title C", "Title, D\nDesc D"), d.stream().map(CorpusReader.Document::text).toList());
        assertEquals(List.of("1", "2", "3", "4"), d.stream().map(CorpusReader.Document::label).toList());
    }
}
