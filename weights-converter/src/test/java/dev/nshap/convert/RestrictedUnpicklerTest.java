package dev.nshap.convert;

import dev.nshap.NshapException;
import dev.nshap.convert.RestrictedUnpickler.StorageRef;
import dev.nshap.convert.RestrictedUnpickler.TensorRef;
import dev.nshap.convert.RestrictedUnpickler.Tuple;
import org.junit.jupiter.api.Test;

import java.math.BigInteger;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The restricted unpickler on hand-assembled pickles: values it must build, and everything it must refuse. */
class RestrictedUnpicklerTest {

    static Object load(byte[] p) {
        return RestrictedUnpickler.load(p, "test", pid -> {
            Tuple t = (Tuple) pid;
            return new StorageRef((RestrictedUnpickler.StorageType) t.get(1), (String) t.get(2), (Long) t.get(4));
        });
    }

    @Test void plainValues() {
        Fixtures.Pickle p = new Fixtures.Pickle().proto().op('}').mark()
                .str("int").integer(-5).str("big").integer(1L << 40).str("pi").op('G', 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18)
                .str("list").op(']').mark().integer(1).integer(2).op('e').str("none").op('N').str("t").op(0x88)
                .op('u').stop();
        Map<?, ?> m = (Map<?, ?>) load(p.bytes());
        assertEquals(-5L, m.get("int"));
        assertEquals(1L << 40, m.get("big"));
        assertEquals(Math.PI, (Double) m.get("pi"), 0);
        assertEquals(List.of(1L, 2L), m.get("list"));
        assertSame(RestrictedUnpickler.NONE, m.get("none"));
        assertEquals(Boolean.TRUE, m.get("t"));
    }

    @Test void long1BeyondSixtyFourBits() {
        byte[] p = new Fixtures.Pickle().proto().op(0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0x80, 0).stop().bytes();
        assertEquals(BigInteger.ONE.shiftLeft(63), load(p));
        byte[] neg = new Fixtures.Pickle().proto().op(0x8a, 1, 0xff).stop().bytes();
        assertEquals(-1L, load(neg));
    }

    /** Protocol 4 spelling of one state-dict entry: FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE. */
    @Test void protocolFourStateDict() {
        Fixtures.Pickle p = new Fixtures.Pickle().op(0x80, 4).op(0x95, 0, 0, 0, 0, 0, 0, 0, 0);
        p.op(0x8c, 11).b.writeBytes("collections".getBytes());
        p.op(0x94).op(0x8c, 11).b.writeBytes("OrderedDict".getBytes());
        p.op(0x94).op(0x93).op(0x94).op(')').op('R').op(0x94);
        p.op(0x8c, 1).b.writeBytes("w".getBytes());
        p.op(0x8c, 12).b.writeBytes("torch._utils".getBytes());
        p.op(0x8c, 18).b.writeBytes("_rebuild_tensor_v2".getBytes());
        p.op(0x93).op(0x94).mark();
        p.mark().str("storage").global("torch", "HalfStorage").str("0").str("cuda:0").integer(6).op('t').op('Q');
        p.integer(0).tuple(2, 3).tuple(3, 1).op(0x89);
        p.global("collections", "OrderedDict").op(')').op('R').op('t').op('R').op('s').stop();
        Map<?, ?> m = (Map<?, ?>) load(p.bytes());
        TensorRef t = (TensorRef) m.get("w");
        assertEquals("F16", t.storage().type().dtype());
        assertArrayEquals(new long[]{2, 3}, t.size());
        assertArrayEquals(new long[]{3, 1}, t.stride());
        assertEquals(6, t.storage().numel());
    }

    static void refuses(byte[] p, String fragment) {
        NshapException e = assertThrows(NshapException.class, () -> load(p));
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
    }

    @Test void refusesEveryOtherGlobalAndCodeBuildingOpcode() {
        refuses(new Fixtures.Pickle().proto().global("posix", "system").stop().bytes(), "posix.system");
        refuses(new Fixtures.Pickle().proto().global("torch", "load").stop().bytes(), "torch.load");
        refuses(new Fixtures.Pickle().proto().global("torch._utils", "_rebuild_device_tensor_from_numpy").stop().bytes(), "_rebuild_device");
        refuses(new Fixtures.Pickle().proto().op(0x8b, 0, 0, 0, 0).stop().bytes(), "LONG4");
        refuses(new Fixtures.Pickle().proto().op('P').stop().bytes(), "PERSID");
        refuses(new Fixtures.Pickle().proto().op(0x92).stop().bytes(), "NEWOBJ_EX");
        refuses(new Fixtures.Pickle().proto().op(0x82, 1).stop().bytes(), "EXT");
        refuses(new Fixtures.Pickle().proto().op('o').stop().bytes(), "OBJ");
        // calling something that is not one of the allowed callables
        refuses(new Fixtures.Pickle().proto().str("x").op(')').op('R').stop().bytes(), "not callable");
        // BUILD on a tensor (a __setstate__ hook in Python) is refused
        refuses(new Fixtures.Pickle().proto().op(']').op('}').op('b').stop().bytes(), "BUILD");
    }

    @Test void refusesMalformedStreams() {
        refuses(new Fixtures.Pickle().proto().op('h', 3).stop().bytes(), "never stored");
        refuses(new Fixtures.Pickle().proto().integer(1).integer(2).stop().bytes(), "STOP with 2 values");
        refuses(new Fixtures.Pickle().proto().integer(1).bytes(), "truncated");
        refuses(new Fixtures.Pickle().proto().op('0').stop().bytes(), "underflow");
        refuses(new Fixtures.Pickle().proto().integer(1).stop().op('N').bytes(), "stray bytes");
        refuses(new Fixtures.Pickle().op(0x80, 9).bytes(), "protocol 9");
    }
}
