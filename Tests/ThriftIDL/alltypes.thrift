// Every Thrift type, for SproutThriftTests' round trips against Python's Thrift.
namespace swift AllTypes
namespace py alltypes
typedef i64 UserID
const i32 ANSWER = 42
const string GREETING = "hi"
const list<i32> PRIMES = [2, 3, 5]
enum Color { RED = 1, GREEN = 2, BLUE = 7 }
struct Inner { 1: required string name, 2: optional i32 count, 3: list<Inner> children }
union Choice { 1: i32 number, 2: string text, 3: Inner inner }
struct Everything {
  1: bool flag, 2: i8 tiny, 3: i16 small, 4: i32 medium, 5: i64 big, 6: double real,
  7: string text, 8: binary blob, 9: list<i32> numbers, 10: set<string> tags,
  11: map<string, i64> counts, 12: map<i32, list<set<string>>> nested,
  13: Inner inner, 14: optional Inner maybe, 15: Color color, 16: Choice choice,
  17: optional string note = "default", 18: UserID user, 19: list<Color> colors, 20: map<Color, Inner> byColor
  21: i32 withDefault = 5
}
exception Oops { 1: i32 code, 2: string why }
service Echo {
  Everything echo(1: Everything value) throws (1: Oops oops),
  void fail(1: i32 code) throws (1: Oops oops),
  oneway void note(1: string text),
  Choice pick(1: Choice c),
  map<Color, Inner> group(1: list<Inner> items),
  list<string> notes()
}
